// Command hitratio prints the hit ratio of every libs/store policy and of
// otter on the synthetic traces of docs/benchmarks.md, beside Bélády's
// optimum, as a Markdown table.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	storebench "switchboard/bench/store"
)

func main() {
	n := flag.Int("n", 1_000_000, "requests per trace (at most 20,000,000)")
	seed := flag.Uint64("seed", 1, "seed of the traces")
	sizesFlag := flag.String("sizes", "500,2000,10000", "cache sizes in entries, comma-separated")
	workers := flag.Int("workers", 2, "replays run at once")
	runs := flag.Int("runs", 1, "replays per cell, averaged (at most 20)")
	only := flag.String("only", "", "run only the traces whose name contains this")
	cachesFlag := flag.String("caches", "", "run only these caches, comma-separated (default all)")
	flag.Parse()

	sizes, err := parseSizes(*sizesFlag)
	if err != nil || *n <= 0 || *n > 20_000_000 || *runs < 1 || *runs > 20 {
		fmt.Fprintf(os.Stderr, "hitratio: bad flags: n %d sizes %q: %v\n", *n, *sizesFlag, err)
		os.Exit(2)
	}
	start := time.Now()
	var traces []storebench.Trace
	for _, tr := range storebench.StandardTraces(*n, *seed) {
		if strings.Contains(tr.Name, *only) {
			traces = append(traces, tr)
		}
	}
	specs := pickSims(*cachesFlag)
	rows := storebench.Table(traces, sizes, specs, *runs, *workers)
	storebench.WriteTable(os.Stdout, rows, specs)
	fmt.Printf("\n%d requests per trace, seed %d, mean of %d runs, %v\n",
		*n, *seed, *runs, time.Since(start).Round(time.Second))
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("size %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// pickSims returns the standard caches named in list, or all of them.
func pickSims(list string) []storebench.SimSpec {
	all := storebench.StandardSims()
	if list == "" {
		return all
	}
	var out []storebench.SimSpec
	for _, spec := range all {
		for _, name := range strings.Split(list, ",") {
			if spec.Name == strings.TrimSpace(name) {
				out = append(out, spec)
			}
		}
	}
	return out
}
