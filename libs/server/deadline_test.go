package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestMaxCallTime: a call without a deadline gets the server's bound; a
// call whose client deadline is sooner keeps it; without MaxCallTime the
// handler sees no deadline at all.
func TestMaxCallTime(t *testing.T) {
	const bound = time.Hour
	for _, tc := range []struct {
		name       string
		max        time.Duration
		clientWait time.Duration // 0: no client deadline
		wantBound  bool          // the handler's deadline is at most bound away
		wantNone   bool          // the handler sees no deadline
	}{
		{"bounded without client deadline", bound, 0, true, false},
		{"client deadline sooner", bound, time.Minute, true, false},
		{"client deadline later", bound, 3 * time.Hour, true, false},
		{"no bound", 0, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(chan time.Duration, 1) // -1: no deadline
			record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				left := time.Duration(-1)
				if d, ok := ctx.Deadline(); ok {
					left = time.Until(d)
				}
				seen <- left
				return h(ctx, req)
			}
			g, addr := startGRPC(t, GRPCOptions{MaxCallTime: tc.max, Unary: []grpc.UnaryServerInterceptor{record}})
			g.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			ctx := context.Background()
			if tc.clientWait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.clientWait)
				defer cancel()
			}
			if _, err := healthpb.NewHealthClient(dial(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatalf("Check: %v", err)
			}
			left := <-seen
			switch {
			case tc.wantNone && left != -1:
				t.Fatalf("handler deadline %s away, want none", left)
			case tc.wantBound && (left < 0 || left > bound):
				t.Fatalf("handler deadline %s away, want within %s", left, bound)
			case tc.clientWait > 0 && tc.clientWait < bound && left > tc.clientWait:
				t.Fatalf("handler deadline %s away, later than the client's %s", left, tc.clientWait)
			}
		})
	}
}

// TestMaxCallTimeCutsAStuckCall: a handler that waits on its context for
// ever is ended by the bound and answered DEADLINE_EXCEEDED, though the
// client set no deadline; the server then still answers.
func TestMaxCallTimeCutsAStuckCall(t *testing.T) {
	var stuck atomic.Bool
	stuck.Store(true)
	block := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if stuck.Load() {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return h(ctx, req)
	}
	g, addr := startGRPC(t, GRPCOptions{MaxCallTime: 50 * time.Millisecond, Unary: []grpc.UnaryServerInterceptor{block}})
	g.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	client := healthpb.NewHealthClient(dial(t, addr))

	_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stuck call without deadline = %v, want DEADLINE_EXCEEDED", err)
	}
	stuck.Store(false)
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a well-behaved call after the stuck one: %v", err)
	}
}
