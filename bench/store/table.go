package storebench

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Row is one trace and cache size, with the hit ratio of each cache.
type Row struct {
	Trace  string
	Size   int
	Belady float64
	Ratios []float64 // in the order of the specs
}

// Table replays every trace at every size against every spec, runs times
// each (a store seeds its hash at random, so runs differ a little) with
// up to workers replays at once, and returns one row per trace and size
// with the mean hit ratio of the runs.
func Table(traces []Trace, sizes []int, specs []SimSpec, runs, workers int) []Row {
	var rows []Row
	type job struct{ row, col int }
	var jobs []job
	for _, tr := range traces {
		for _, size := range sizes {
			rows = append(rows, Row{Trace: tr.Name, Size: size, Ratios: make([]float64, len(specs))})
			for c := -1; c < len(specs); c++ {
				jobs = append(jobs, job{len(rows) - 1, c})
			}
		}
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for j := range ch {
				tr := traces[j.row/len(sizes)]
				size := rows[j.row].Size
				if j.col < 0 {
					rows[j.row].Belady = float64(Belady(tr.Keys, size)) / float64(len(tr.Keys))
					continue
				}
				sum := 0.0
				for range runs {
					sum += HitRatio(specs[j.col], tr.Keys, size)
				}
				rows[j.row].Ratios[j.col] = sum / float64(runs)
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return rows
}

// WriteTable prints rows as a Markdown table of hit ratios in percent.
func WriteTable(w io.Writer, rows []Row, specs []SimSpec) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	fmt.Fprintf(w, "| trace | size | optimum | %s |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---|---:|---:|%s\n", strings.Repeat("---:|", len(specs)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %.2f |", r.Trace, r.Size, 100*r.Belady)
		for _, v := range r.Ratios {
			fmt.Fprintf(w, " %.2f |", 100*v)
		}
		fmt.Fprintln(w)
	}
}
