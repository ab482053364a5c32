package grpcload

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"switchboard/libs/grpctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:7200", true}, {"127.8.9.10:1", true}, {"[::1]:7300", true}, {"localhost:7300", true},
		{"10.0.0.1:7200", false}, {"example.com:443", false}, {"0.0.0.0:7200", false},
		{"[::]:7200", false}, {"127.0.0.1", false}, {"", false}, {"127.0.0.1:", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if err := CheckLoopback(tc.addr); (err == nil) != tc.ok {
				t.Fatalf("CheckLoopback(%q) = %v, want ok %v", tc.addr, err, tc.ok)
			}
		})
	}
}

func TestOptionsCheck(t *testing.T) {
	good := Options{Concurrency: 4, Requests: 10, Duration: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		ok   bool
	}{
		{"good", func(*Options) {}, true},
		{"no workers", func(o *Options) { o.Concurrency = 0 }, false},
		{"too many workers", func(o *Options) { o.Concurrency = MaxConcurrency + 1 }, false},
		{"no requests", func(o *Options) { o.Requests = 0 }, false},
		{"too many requests", func(o *Options) { o.Requests = MaxRequests + 1 }, false},
		{"no duration", func(o *Options) { o.Duration = 0 }, false},
		{"too long", func(o *Options) { o.Duration = MaxDuration + time.Second }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			if err := o.Check(); (err == nil) != tc.ok {
				t.Fatalf("Check = %v, want ok %v", err, tc.ok)
			}
			if _, err := Run(context.Background(), o, func(context.Context, int, int64) error { return nil }); (err == nil) != tc.ok {
				t.Fatalf("Run = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := percentiles(ds)
	if want := (Latency{P50: 50, P90: 90, P99: 99, Max: 100}); got != want {
		t.Fatalf("percentiles of 1..100ms = %+v, want %+v", got, want)
	}
	if got := percentiles(nil); got != (Latency{}) {
		t.Fatalf("percentiles of nothing = %+v", got)
	}
}

// TestRunCountsCallsAndCodes: a run stops at its request count and counts
// errors by code, over real gRPC on loopback.
func TestRunCountsCallsAndCodes(t *testing.T) {
	addr := startHealth(t)
	client := healthpb.NewHealthClient(grpctest.Dial(t, addr))
	op := func(ctx context.Context, w int, seq int64) error {
		switch {
		case seq%5 == 4:
			return status.Error(codes.Unavailable, "every fifth")
		case seq%7 == 6:
			return errors.New("plain")
		}
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	rep, err := Run(context.Background(), Options{Name: "check", Target: addr, Concurrency: 4, Requests: 400, Duration: time.Minute}, op)
	if err != nil {
		t.Fatal(err)
	}
	errs := 0
	for _, n := range rep.Errors {
		errs += n
	}
	if rep.Requests != 400 || rep.OK+int64(errs) != 400 || rep.Errors["Unavailable"] == 0 || rep.Errors["Unknown"] == 0 {
		t.Fatalf("report = %+v", rep)
	}
	l := rep.LatencyMS
	if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) || l.Max <= 0 || rep.PerSecond <= 0 {
		t.Fatalf("latencies %+v, rate %f", l, rep.PerSecond)
	}
}

// TestRunStopsAtDuration: a run whose calls never end on their own stops
// at its duration, and the calls it cut are not counted.
func TestRunStopsAtDuration(t *testing.T) {
	op := func(ctx context.Context, _ int, _ int64) error {
		<-ctx.Done()
		return ctx.Err()
	}
	rep, err := Run(context.Background(), Options{Concurrency: 3, Requests: MaxRequests, Duration: 20 * time.Millisecond}, op)
	if err != nil || rep.Requests != 0 || len(rep.Errors) != 0 {
		t.Fatalf("Run = %+v, %v; want no calls counted", rep, err)
	}
}

func startHealth(t *testing.T) string {
	t.Helper()
	return grpctest.Serve(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, health.NewServer()) })
}
