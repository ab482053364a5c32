package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/proctest"
)

func TestMain(m *testing.M) {
	if holderMain() { // started by TestHolder's run as its holder
		return
	}
	code := m.Run()
	proctest.RemoveBuilds()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// Connections past the process's share are opened and held by a helper
// process (this test binary, as the holder), counted in the report and
// closed at the end.
func TestHolder(t *testing.T) {
	p := params{mode: "idle", replicas: 2, conns: 18, rooms: 3, rate: 1, duration: time.Second,
		payload: 100, connectPar: 8, perProcess: 10}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Connections != 18 || rep.ConnectFailures != 0 || rep.Held != 18 {
		t.Fatalf("report %+v", rep)
	}
	p.conns = 21 // more than this process and one holder may hold
	if err := p.check(); err == nil {
		t.Fatal("21 connections accepted with 10 a process")
	}
}

// A short run with in-process replicas delivers every message and reports
// its figures.
func TestRun(t *testing.T) {
	p := params{mode: "fanout", replicas: 2, conns: 20, rooms: 4, rate: 50,
		duration: time.Second, payload: 100, connectPar: 8}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Published == 0 || rep.Expected != rep.Published*5 || rep.Delivered != rep.Expected || rep.Lost != 0 {
		t.Fatalf("report %+v: want every publish delivered to its 5 members", rep)
	}
	if rep.Duplicates != 0 || rep.LatencyMS == nil || rep.LatencyMS.P50 <= 0 || rep.ConnectFailures != 0 {
		t.Fatalf("report %+v", rep)
	}
	fields := printed(t, rep)
	for _, f := range []string{"published", "publish_errors", "expected_deliveries", "deliveries", "duplicates", "lost"} {
		if v, ok := fields[f]; !ok {
			t.Errorf("%q missing from the report", f)
		} else if f == "lost" && v != float64(0) {
			t.Errorf("lost = %v, want 0", v)
		}
	}
}

// printed returns the report's JSON as the command prints it, decoded.
func printed(t *testing.T, rep *report) map[string]any {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	return fields
}

// The modes that only connect, over in-process replicas: every connection
// is counted, and no delivery figure is printed since nothing was
// published.
func TestConnectModes(t *testing.T) {
	for _, mode := range []string{"idle", "storm"} {
		t.Run(mode, func(t *testing.T) {
			p := params{mode: mode, replicas: 2, conns: 30, rooms: 3, rate: 1, duration: time.Second,
				payload: 100, connectPar: 32}
			if err := p.check(); err != nil {
				t.Fatal(err)
			}
			if mode == "storm" && p.connectPar != 256 {
				t.Errorf("storm opens %d connections at once, want 256", p.connectPar)
			}
			rep, err := run(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Mode != mode || rep.Connections != 30 || rep.ConnectFailures != 0 || rep.Held != 30 ||
				rep.ConnectSeconds <= 0 || rep.ConnectsPerSec <= 0 || rep.counts != nil || rep.LatencyMS != nil {
				t.Fatalf("report %+v", rep)
			}
			fields := printed(t, rep)
			for _, f := range []string{"published", "deliveries", "duplicates", "lost"} {
				if _, ok := fields[f]; ok {
					t.Errorf("%q printed by a mode that publishes nothing", f)
				}
			}
		})
	}
}

// The recorder on hand-made sequences: a sequence number arriving again at
// the same client is a duplicate and does not make up for a lost one; the
// same number at another client is a delivery of its own; reset forgets.
func TestRecorderCounts(t *testing.T) {
	tests := []struct {
		name                        string
		got                         map[int][]int64 // sequence numbers received, per client
		expected                    int64
		delivered, duplicates, lost int64
	}{
		{"every one once", map[int][]int64{0: {0, 2, 4}, 1: {1, 3}}, 5, 5, 0, 0},
		{"nothing", nil, 4, 0, 0, 4},
		{"a duplicate hides no loss", map[int][]int64{0: {0, 2, 2}, 1: {1, 3}}, 5, 4, 1, 1},
		{"repeated many times", map[int][]int64{0: {7, 7, 7, 7}}, 2, 1, 3, 1},
		{"same number, two clients", map[int][]int64{0: {5}, 1: {5}, 2: {5, 5}}, 3, 3, 1, 0},
		{"out of order", map[int][]int64{0: {3, 1, 2, 1, 3}}, 3, 3, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecorder()
			r.add(9, 100, time.Millisecond) // forgotten by reset
			r.add(9, 100, time.Millisecond)
			r.reset()
			for client, seqs := range tt.got {
				for _, seq := range seqs {
					r.add(client, seq, time.Millisecond)
				}
			}
			d, dup, lost := r.counts(tt.expected)
			if d != tt.delivered || dup != tt.duplicates || lost != tt.lost {
				t.Fatalf("counts = %d delivered, %d duplicates, %d lost; want %d, %d, %d",
					d, dup, lost, tt.delivered, tt.duplicates, tt.lost)
			}
			if pc := r.percentiles(); tt.delivered > 0 && pc == nil || tt.delivered == 0 && pc != nil {
				t.Fatalf("percentiles %+v after %d distinct deliveries", pc, tt.delivered)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []params{
		{mode: "chaos", replicas: 2, conns: 10, rooms: 1, rate: 1, duration: time.Second, payload: 100},
		{mode: "idle", replicas: 9, conns: 10, rooms: 1, rate: 1, duration: time.Second, payload: 100},
		{mode: "idle", replicas: 2, conns: 100000, rooms: 1, rate: 1, duration: time.Second, payload: 100},
		{mode: "idle", replicas: 2, conns: 10, rooms: 1, rate: 1, duration: time.Hour, payload: 100},
		{mode: "soak", replicas: 2, conns: 10, rooms: 1, rate: 1, duration: time.Second, payload: 100, soak: soakOK},
		{mode: "soak", gatewayBin: "gw", replicas: 1, conns: 10, rooms: 1, rate: 1, duration: time.Second, payload: 100, soak: soakOK},
		{mode: "soak", gatewayBin: "gw", replicas: 2, conns: 10, rooms: 1, rate: 1, duration: time.Hour, payload: 100, soak: soakOK},
		{mode: "soak", gatewayBin: "gw", replicas: 2, conns: 10, rooms: 1, rate: 1, duration: time.Second, payload: 100,
			soak: soakParams{churn: 4, faultEvery: time.Second, redisPause: time.Minute, settle: time.Second}},
	}
	for _, p := range tests {
		if err := p.check(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// The recovery mode with in-process replicas: every acknowledged message
// reaches every client of its room once, across the loss of replica 0.
func TestRecoveryMode(t *testing.T) {
	p := params{mode: "recovery", replicas: 2, conns: 20, rooms: 4, rate: 100,
		duration: 1500 * time.Millisecond, payload: 100, connectPar: 8}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Recovery
	if r == nil || r.Acked == 0 || r.Expected != r.Acked*5 || r.Missing != 0 || r.Duplicates != 0 || r.Gaps != 0 {
		t.Fatalf("recovery report %+v", r)
	}
	if r.Recovered+r.NotRecovered != int64(p.conns) || r.NotRecovered != 0 {
		t.Fatalf("recoveries reported: %d ok, %d not, want %d ok", r.Recovered, r.NotRecovered, p.conns)
	}
}

// The step mode over in-process replicas: with a bound no step can meet it
// stops after the first step and holds no rate; with a loose bound every
// step holds and it stops at the highest rate. Either way the report
// carries every step's figures.
func TestStepMode(t *testing.T) {
	tests := []struct {
		name    string
		bound   time.Duration
		steps   int
		held    int
		stopped string
	}{
		{name: "impossible bound", bound: time.Nanosecond, steps: 1, held: 0, stopped: stopP99},
		{name: "loose bound", bound: time.Hour, steps: 3, held: 60, stopped: stopMaxRate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := params{mode: "step", replicas: 1, conns: 10, rooms: 2, rate: 1, duration: time.Second,
				payload: 100, connectPar: 8, step: stepParams{start: 20, step: 20,
					duration: 500 * time.Millisecond, p99Bound: tt.bound, maxRate: 60}}
			if err := p.check(); err != nil {
				t.Fatal(err)
			}
			rep, err := run(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			s := rep.Steps
			if s == nil || len(s.Steps) != tt.steps || s.HighestHeldRate != tt.held || s.StoppedBecause != tt.stopped {
				t.Fatalf("step report %+v: want %d steps, %d held, stopped by %s", s, tt.steps, tt.held, tt.stopped)
			}
			for i, f := range s.Steps {
				if f.Rate != 20+20*i || f.Published == 0 || f.Expected != f.Published*5 || f.Lost != 0 || f.LatencyMS == nil {
					t.Errorf("step %d: %+v", i, f)
				}
				if f.Held != (i < tt.held/20) {
					t.Errorf("step %d held %v", i, f.Held)
				}
			}
		})
	}
}

func TestStepCheck(t *testing.T) {
	ok := stepParams{start: 500, step: 500, duration: 5 * time.Second, p99Bound: 50 * time.Millisecond, maxRate: 20000}
	tests := map[string]func(*stepParams){
		"no start":      func(s *stepParams) { s.start = 0 },
		"no step":       func(s *stepParams) { s.step = 0 },
		"max below":     func(s *stepParams) { s.maxRate = 100 },
		"long steps":    func(s *stepParams) { s.duration = time.Minute },
		"no bound":      func(s *stepParams) { s.p99Bound = 0 },
		"too many":      func(s *stepParams) { s.step = 10 },
		"max too large": func(s *stepParams) { s.maxRate = 50000 },
	}
	if err := ok.check(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			s := ok
			mod(&s)
			if err := s.check(); err == nil {
				t.Errorf("%+v accepted", s)
			}
		})
	}
}

var soakOK = soakParams{churn: 4, faultEvery: time.Second, redisPause: 100 * time.Millisecond, settle: 20 * time.Second}

// The soak mode over two gateway processes for a few seconds, with a fault
// every second: each kind of fault happens, replica 0 restarts and the
// last replica never does, every acknowledged message reaches the
// listeners, and each process is back at its baseline.
func TestSoakMode(t *testing.T) {
	p := params{mode: "soak", gatewayBin: proctest.Build(t, "gateway"), replicas: 2, conns: 6, rooms: 3,
		rate: 200, duration: 5 * time.Second, payload: 100, connectPar: 8, soak: soakOK}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), p)
	if err != nil {
		t.Fatalf("%v; report %+v", err, rep.Soak)
	}
	s := rep.Soak
	if !s.Passed || len(s.Failures) != 0 || s.Cycles == 0 || len(s.Processes) != 2 {
		t.Fatalf("soak report %+v", s)
	}
	kinds := map[string]int{}
	for _, f := range s.Faults {
		kinds[f.Kind]++
	}
	if kinds[faultKill] == 0 || kinds[faultPubSub] == 0 || kinds[faultPause] == 0 {
		t.Errorf("faults %+v: want every kind", s.Faults)
	}
	d := s.Deliveries
	if d.Listeners != 6 || d.Acked == 0 || d.Expected != 2*d.Acked || d.Missing != 0 {
		t.Errorf("deliveries %+v: want every acknowledged publish at the room's 2 listeners", d)
	}
	if s.Processes[0].Restarts == 0 || s.Processes[1].Restarts != 0 {
		t.Errorf("restarts %d and %d: want replica 0 restarted, replica 1 (the last) never",
			s.Processes[0].Restarts, s.Processes[1].Restarts)
	}
	for _, pf := range s.Processes {
		if pf.PID == 0 || pf.Before.Goroutines == 0 || pf.Before.FDs == 0 || pf.Before.HeapInuse == 0 ||
			pf.After.Goroutines == 0 || pf.HeapBound <= pf.Before.HeapInuse {
			t.Errorf("process figures %+v", pf)
		}
	}
}

// The leak check, on hand-made figures: within the tolerance passes, past
// it names what grew.
func TestSoakLeaks(t *testing.T) {
	base := sample{Goroutines: 40, FDs: 20, HeapInuse: 10 << 20}
	tests := []struct {
		name  string
		after sample
		want  []string
	}{
		{"same", base, nil},
		{"within tolerance", sample{Goroutines: 45, FDs: 25, HeapInuse: 15 << 20}, nil},
		{"lower", sample{Goroutines: 30, FDs: 10, HeapInuse: 1 << 20}, nil},
		{"goroutines", sample{Goroutines: 46, FDs: 20, HeapInuse: 10 << 20}, []string{"46 goroutines"}},
		{"fds", sample{Goroutines: 40, FDs: 120, HeapInuse: 10 << 20}, []string{"120 open file descriptors"}},
		{"redis pool grown", sample{Goroutines: 40, FDs: 35, RedisConns: 15, HeapInuse: 10 << 20}, nil},
		{"redis past the pool", sample{Goroutines: 40, FDs: 1020, RedisConns: 1000, HeapInuse: 10 << 20},
			[]string{"1000 connections to Redis"}},
		{"heap", sample{Goroutines: 40, FDs: 20, HeapInuse: 16 << 20}, []string{"heap in use 16777216"}},
		{"all", sample{Goroutines: 1040, FDs: 1020, HeapInuse: 1 << 30}, []string{"goroutines", "file descriptors", "heap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := leaks(base, tt.after)
			if len(got) != len(tt.want) {
				t.Fatalf("leaks = %q, want %d lines", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("leaks[%d] = %q, want it to name %q", i, got[i], w)
				}
			}
		})
	}
	if b := heapBound(1 << 20); b != 5<<20 {
		t.Errorf("heap bound of a 1 MiB baseline %d, want the 4 MiB floor above it", b)
	}
}

// A failed leak check fails the run, naming the replica.
func TestSoakVerdict(t *testing.T) {
	sk := &soak{rep: &soakReport{Cycles: 10, Failures: []string{}, Processes: []processFigs{
		{Replica: 1, PID: 7, Before: sample{Goroutines: 40, FDs: 20, HeapInuse: 1 << 20},
			After: sample{Goroutines: 400, FDs: 20, HeapInuse: 1 << 20}},
	}}}
	err := sk.verdict()
	if err == nil || sk.rep.Passed || !strings.Contains(err.Error(), "replica 1 (pid 7): 400 goroutines") {
		t.Fatalf("verdict %v, passed %v", err, sk.rep.Passed)
	}
}

// runtimeFigures reads the two figures from a text exposition.
func TestRuntimeFigures(t *testing.T) {
	body := "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\n" +
		"go_memstats_heap_inuse_bytes 1.2582912e+07\ngo_memstats_heap_alloc_bytes 5\n"
	g, h, err := runtimeFigures(strings.NewReader(body))
	if err != nil || g != 42 || h != 12582912 {
		t.Fatalf("runtimeFigures = %d, %d, %v", g, h, err)
	}
	if _, _, err := runtimeFigures(strings.NewReader("go_goroutines 1\n")); err == nil {
		t.Error("missing heap accepted")
	}
}

// connsTo counts the connections to one remote port among the process's
// sockets, in a /proc/net/tcp table.
func TestConnsTo(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1
   1: 0100007F:9C41 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   2: 0100007F:9C42 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
   3: 0100007F:9C43 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0 20 4 30 10 -1
`
	mine := map[string]bool{"111": true, "222": true, "333": true}
	if n := connsTo(table, "6379", mine); n != 2 {
		t.Errorf("connsTo = %d, want 2 (444 is another process's, 333 goes to 8080)", n)
	}
}
