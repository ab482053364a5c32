package main

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
	if rep.LatencyMS == nil || rep.LatencyMS.P50 <= 0 || rep.ConnectFailures != 0 {
		t.Fatalf("report %+v", rep)
	}
}

func TestCheck(t *testing.T) {
	tests := []params{
		{mode: "chaos", replicas: 2, conns: 10, rooms: 1, rate: 1, duration: time.Second, payload: 100},
		{mode: "idle", replicas: 9, conns: 10, rooms: 1, rate: 1, duration: time.Second, payload: 100},
		{mode: "idle", replicas: 2, conns: 100000, rooms: 1, rate: 1, duration: time.Second, payload: 100},
		{mode: "idle", replicas: 2, conns: 10, rooms: 1, rate: 1, duration: time.Hour, payload: 100},
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
