package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// sample is what the soak measures of one gateway process.
type sample struct {
	Goroutines int64 `json:"goroutines"`
	FDs        int64 `json:"open_fds"`
	HeapInuse  int64 `json:"heap_inuse_bytes"`
}

// processFigs are one gateway process's figures: its baseline (before)
// and its end (after).
type processFigs struct {
	Replica   int    `json:"replica"`
	PID       int    `json:"pid"`
	Restarts  int    `json:"restarts"`
	Before    sample `json:"before"`
	After     sample `json:"after"`
	HeapBound int64  `json:"heap_inuse_bound_bytes"`
}

// soakTolerance is how far a gateway process may end above its baseline:
// goroutines and file descriptors by a count (a connection being torn
// down, the measuring request itself), the heap in use by HeapShare of
// the baseline or HeapMinBytes, whichever is larger (the allocator keeps
// spans of freed objects, caches keep entries until their TTL).
type soakTolerance struct {
	Goroutines   int64   `json:"goroutines"`
	FDs          int64   `json:"open_fds"`
	HeapShare    float64 `json:"heap_share"`
	HeapMinBytes int64   `json:"heap_min_bytes"`
}

var tolerance = soakTolerance{Goroutines: 5, FDs: 5, HeapShare: 0.5, HeapMinBytes: 4 << 20}

// heapBound is the largest heap in use a process may end with.
func heapBound(before int64) int64 {
	return before + max(tolerance.HeapMinBytes, int64(float64(before)*tolerance.HeapShare))
}

// leaks returns, one line each, what of after did not come back to the
// baseline before within the tolerance; none when everything did.
func leaks(before, after sample) []string {
	var out []string
	if after.Goroutines > before.Goroutines+tolerance.Goroutines {
		out = append(out, fmt.Sprintf("%d goroutines, baseline %d (tolerance +%d)",
			after.Goroutines, before.Goroutines, tolerance.Goroutines))
	}
	if after.FDs > before.FDs+tolerance.FDs {
		out = append(out, fmt.Sprintf("%d open file descriptors, baseline %d (tolerance +%d)",
			after.FDs, before.FDs, tolerance.FDs))
	}
	if b := heapBound(before.HeapInuse); after.HeapInuse > b {
		out = append(out, fmt.Sprintf("heap in use %d bytes, baseline %d (bound %d)",
			after.HeapInuse, before.HeapInuse, b))
	}
	return out
}

// baseline warms the replica up and measures it once steady.
func (sk *soak) baseline(ctx context.Context, r *replica) (sample, error) {
	if err := sk.warmUp(ctx, r.http); err != nil {
		return sample{}, err
	}
	return sk.steady(ctx, r)
}

// steady measures r until two samples in a row agree on goroutines and
// file descriptors, for at most -soak-settle, and returns the last.
func (sk *soak) steady(ctx context.Context, r *replica) (sample, error) {
	deadline := time.Now().Add(sk.p.soak.settle)
	prev, err := sk.measure(ctx, r)
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(settlePoll)
		var cur sample
		if cur, err = sk.measure(ctx, r); err == nil && cur.Goroutines == prev.Goroutines && cur.FDs == prev.FDs {
			return cur, nil
		}
		prev = cur
	}
	return prev, err
}

// settle measures every replica until it is back within the tolerance of
// its baseline or -soak-settle passed, and records the figures.
func (sk *soak) settle(ctx context.Context) {
	start := time.Now()
	deadline := start.Add(sk.p.soak.settle)
	for _, s := range sk.slots {
		if s.broken {
			continue // its failed restart is reported with the fault
		}
		after, err := sk.returned(ctx, s, deadline)
		if err != nil {
			sk.rep.Failures = append(sk.rep.Failures, fmt.Sprintf("replica %d: %v", s.index, err))
			continue
		}
		sk.rep.Processes = append(sk.rep.Processes, processFigs{Replica: s.index, PID: s.r.pid,
			Restarts: s.restarts, Before: s.base, After: after, HeapBound: heapBound(s.base.HeapInuse)})
	}
	sk.rep.SettleSeconds = time.Since(start).Seconds()
}

// returned polls the slot's replica until leaks finds nothing or the
// deadline passed, and returns the last sample.
func (sk *soak) returned(ctx context.Context, s *slot, deadline time.Time) (sample, error) {
	for {
		cur, err := sk.measure(ctx, s.r)
		if err != nil || len(leaks(s.base, cur)) == 0 || !time.Now().Before(deadline) {
			return cur, err
		}
		time.Sleep(settlePoll)
	}
}

// measure forces a garbage collection in the replica (pprof's heap
// profile with gc=1), then reads its goroutines and heap in use from
// /metrics and counts its open file descriptors in /proc.
func (sk *soak) measure(ctx context.Context, r *replica) (sample, error) {
	if err := sk.fetch(ctx, "http://"+r.debug+"/debug/pprof/heap?gc=1", nil); err != nil {
		return sample{}, err
	}
	var s sample
	err := sk.fetch(ctx, "http://"+r.http+"/metrics", func(body io.Reader) error {
		var err error
		s.Goroutines, s.HeapInuse, err = runtimeFigures(body)
		return err
	})
	if err != nil {
		return sample{}, err
	}
	s.FDs, err = openFDs(r.pid)
	return s, err
}

// fetch GETs url and hands its body to read (nil: discarded).
func (sk *soak) fetch(ctx context.Context, url string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := sk.probe.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if read == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return read(resp.Body)
}

// runtimeFigures reads go_goroutines and go_memstats_heap_inuse_bytes from
// a Prometheus text exposition.
func runtimeFigures(body io.Reader) (goroutines, heapInuse int64, err error) {
	found := 0
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		var dst *int64
		switch {
		case !ok:
			continue
		case name == "go_goroutines":
			dst = &goroutines
		case name == "go_memstats_heap_inuse_bytes":
			dst = &heapInuse
		default:
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("metric %s: %w", name, err)
		}
		*dst = int64(f)
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("go_goroutines or go_memstats_heap_inuse_bytes missing from /metrics")
	}
	return goroutines, heapInuse, nil
}

// openFDs counts a process's open file descriptors.
func openFDs(pid int) (int64, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return int64(len(entries)), nil
}
