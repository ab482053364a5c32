package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// sample is what the soak measures of one gateway process.
type sample struct {
	Goroutines int64 `json:"goroutines"`
	FDs        int64 `json:"open_fds"`
	RedisConns int64 `json:"redis_connections"` // of FDs, the TCP connections to Redis
	HeapInuse  int64 `json:"heap_inuse_bytes"`
}

// otherFDs are the file descriptors other than the connections to Redis.
func (s sample) otherFDs() int64 { return s.FDs - s.RedisConns }

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
// goroutines and file descriptors other than Redis connections by a count
// (a connection being torn down, the measuring request itself); the heap
// in use by HeapShare of the baseline or HeapMinBytes, whichever is larger
// (the allocator keeps spans of freed objects, caches keep entries until
// their TTL). The connections to Redis are not held to the baseline but to
// a bound: the client's pool keeps up to its size (10 per GOMAXPROCS) idle
// connections for 30 minutes once a burst opened them, plus the pub/sub
// connection.
type soakTolerance struct {
	Goroutines   int64   `json:"goroutines"`
	FDs          int64   `json:"open_fds_besides_redis"`
	RedisConns   int64   `json:"redis_connections_max"`
	HeapShare    float64 `json:"heap_share"`
	HeapMinBytes int64   `json:"heap_min_bytes"`
}

var tolerance = soakTolerance{Goroutines: 5, FDs: 5, RedisConns: 10*int64(runtime.GOMAXPROCS(0)) + 1,
	HeapShare: 0.5, HeapMinBytes: 4 << 20}

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
	if after.otherFDs() > before.otherFDs()+tolerance.FDs {
		out = append(out, fmt.Sprintf("%d open file descriptors besides Redis connections, baseline %d (tolerance +%d)",
			after.otherFDs(), before.otherFDs(), tolerance.FDs))
	}
	if after.RedisConns > tolerance.RedisConns {
		out = append(out, fmt.Sprintf("%d connections to Redis (bound %d)", after.RedisConns, tolerance.RedisConns))
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
// /metrics of its metrics listener and counts its open file descriptors,
// and its connections to Redis, in /proc.
func (sk *soak) measure(ctx context.Context, r *replica) (sample, error) {
	if err := sk.fetch(ctx, "http://"+r.debug+"/debug/pprof/heap?gc=1", nil); err != nil {
		return sample{}, err
	}
	var s sample
	err := sk.fetch(ctx, "http://"+r.metrics+"/metrics", func(body io.Reader) error {
		var err error
		s.Goroutines, s.HeapInuse, err = runtimeFigures(body)
		return err
	})
	if err != nil {
		return sample{}, err
	}
	s.FDs, s.RedisConns, err = openFDs(r.pid, sk.redisPort)
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

// openFDs counts a process's open file descriptors and, among them, its
// TCP connections to the remote port.
func openFDs(pid int, port string) (fds, conns int64, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	sockets := make(map[string]bool)
	for _, e := range entries {
		link, _ := os.Readlink(filepath.Join(dir, e.Name())) // "" if closed meanwhile
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			sockets[strings.TrimSuffix(inode, "]")] = true
		}
	}
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0, 0, err
	}
	return int64(len(entries)), connsTo(string(table), port, sockets), nil
}

// connsTo counts the rows of a /proc/net/tcp table whose remote port is
// port (decimal) and whose inode is in sockets.
func connsTo(table, port string, sockets map[string]bool) int64 {
	p, _ := strconv.Atoi(port)
	suffix := fmt.Sprintf(":%04X", p)
	var n int64
	for _, line := range strings.Split(table, "\n") {
		// sl local_address rem_address st queues tr retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[2], suffix) && sockets[f[9]] {
			n++
		}
	}
	return n
}
