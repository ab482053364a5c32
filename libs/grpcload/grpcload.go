package grpcload

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Caps of Options, so that a typo cannot start an endless run.
const (
	MaxRequests    = 5_000_000
	MaxDuration    = 10 * time.Minute
	MaxConcurrency = 1024
)

// Op makes one call; worker is in [0, Concurrency), seq counts that
// worker's calls from 0.
type Op func(ctx context.Context, worker int, seq int64) error

// Options bound a run.
type Options struct {
	// Name says what is measured, for the report.
	Name string
	// Target is the address the Op calls, for the report.
	Target string
	// Concurrency is the number of workers, in [1, MaxConcurrency].
	Concurrency int
	// Requests stops the run after this many calls, in [1, MaxRequests].
	Requests int64
	// Duration stops the run after this long, in (0, MaxDuration].
	Duration time.Duration
}

// Check says what is wrong with o, naming the flag-like field.
func (o Options) Check() error {
	switch {
	case o.Concurrency < 1 || o.Concurrency > MaxConcurrency:
		return fmt.Errorf("concurrency %d is not in [1, %d]", o.Concurrency, MaxConcurrency)
	case o.Requests < 1 || o.Requests > MaxRequests:
		return fmt.Errorf("requests %d is not in [1, %d]", o.Requests, MaxRequests)
	case o.Duration <= 0 || o.Duration > MaxDuration:
		return fmt.Errorf("duration %s is not in (0, %s]", o.Duration, MaxDuration)
	}
	return nil
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Report is what a run measured.
type Report struct {
	Name        string         `json:"name"`
	Target      string         `json:"target"`
	Concurrency int            `json:"concurrency"`
	Requests    int64          `json:"requests"` // calls made
	OK          int64          `json:"ok"`
	Errors      map[string]int `json:"errors"` // status code name -> calls
	Seconds     float64        `json:"seconds"`
	PerSecond   float64        `json:"per_second"` // calls made a second
	LatencyMS   Latency        `json:"latency_ms"` // of every call, failed ones too
	CPUs        int            `json:"cpus"`
	GoVersion   string         `json:"go_version"`
}

// Run calls op from o.Concurrency workers until o.Requests calls are made,
// o.Duration has passed or ctx ends, and reports. Calls that ctx cut short
// at the end are not counted.
func Run(ctx context.Context, o Options, op Op) (*Report, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()

	var issued atomic.Int64
	results := make([]workerResult, o.Concurrency)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Go(func() { results[w] = work(ctx, w, op, &issued, o.Requests) })
	}
	wg.Wait()
	return summarise(o, results, time.Since(start)), nil
}

// workerResult is what one worker saw.
type workerResult struct {
	latencies []time.Duration
	errors    map[codes.Code]int
}

func work(ctx context.Context, w int, op Op, issued *atomic.Int64, limit int64) workerResult {
	r := workerResult{errors: map[codes.Code]int{}}
	for seq := int64(0); !ended(ctx) && issued.Add(1) <= limit; seq++ {
		t0 := time.Now()
		err := op(ctx, w, seq)
		d := time.Since(t0)
		if err != nil && ended(ctx) {
			break // cut by the end of the run, not an answer
		}
		r.latencies = append(r.latencies, d)
		if err != nil {
			r.errors[codeOf(err)]++
		}
	}
	return r
}

// ended reports whether the run is over. gRPC fails a call whose deadline
// has passed before the context's own timer has fired, so the clock is
// read too.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// codeOf is the status code of err; a plain error counts as UNKNOWN.
func codeOf(err error) codes.Code {
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded
	}
	return status.Code(err)
}

func summarise(o Options, results []workerResult, elapsed time.Duration) *Report {
	rep := &Report{
		Name: o.Name, Target: o.Target, Concurrency: o.Concurrency, Errors: map[string]int{},
		Seconds: elapsed.Seconds(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
	}
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.latencies...)
		for c, n := range r.errors {
			rep.Errors[c.String()] += n
		}
	}
	rep.Requests = int64(len(all))
	rep.OK = rep.Requests
	for _, n := range rep.Errors {
		rep.OK -= int64(n)
	}
	if elapsed > 0 {
		rep.PerSecond = float64(rep.Requests) / elapsed.Seconds()
	}
	rep.LatencyMS = percentiles(all)
	return rep
}

// percentiles sorts ds and reads the nearest-rank percentiles.
func percentiles(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		rank := int(math.Ceil(p * float64(len(ds))))
		return ms(ds[min(max(rank, 1), len(ds))-1])
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// CheckLoopback refuses an address whose host is not a loopback IP or
// "localhost": the load commands must never load someone else's service.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("target %q is not host:port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not on a loopback address (127.0.0.0/8, ::1 or localhost)", addr)
	}
	return nil
}
