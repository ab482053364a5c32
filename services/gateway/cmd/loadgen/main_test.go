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
