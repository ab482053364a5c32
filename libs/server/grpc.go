package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"switchboard/libs/metrics"
)

// GRPCOptions configure NewGRPC.
type GRPCOptions struct {
	// Registry receives the per-method RPC metrics. Required.
	Registry *prometheus.Registry
	// Logger receives recovered panics. Nil: discarded.
	Logger *slog.Logger
	// MaxRecvBytes caps one inbound message. Zero: 4 MiB.
	MaxRecvBytes int
	// MaxCallTime bounds the work of one unary call, so that a client that
	// sets no deadline cannot hold a handler for ever: the handler's context
	// ends at the client's deadline or MaxCallTime after the call arrived,
	// whichever comes first, and a call cut by the bound is answered
	// DEADLINE_EXCEEDED. Streams are not bounded. Zero: no bound but the
	// client's.
	MaxCallTime time.Duration
	// Unary and Stream run after metrics, recovery and the call bound, in
	// order.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
}

// GRPC is a gRPC server with its health service.
type GRPC struct {
	*grpc.Server
	Health *health.Server
}

// NewGRPC returns a server with metrics, panic recovery, health and
// reflection registered. Services register their own APIs on it, then mark
// themselves serving with Health.SetServingStatus("", SERVING).
func NewGRPC(opts GRPCOptions) *GRPC {
	if opts.MaxRecvBytes == 0 {
		opts.MaxRecvBytes = 4 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets(metrics.LatencyBuckets)))
	opts.Registry.MustRegister(m)

	onPanic := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in rpc", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	unary := []grpc.UnaryServerInterceptor{
		m.UnaryServerInterceptor(), recovery.UnaryServerInterceptor(onPanic),
	}
	if opts.MaxCallTime > 0 {
		unary = append(unary, boundCall(opts.MaxCallTime))
	}
	unary = append(unary, opts.Unary...)
	stream := append([]grpc.StreamServerInterceptor{
		m.StreamServerInterceptor(), recovery.StreamServerInterceptor(onPanic),
	}, opts.Stream...)

	s := grpc.NewServer(
		grpc.MaxRecvMsgSize(opts.MaxRecvBytes),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: 10 * time.Second, PermitWithoutStream: true,
		}),
	)
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	reflection.Register(s)
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return &GRPC{Server: s, Health: h}
}

// Serve serves on lis until ctx is cancelled, then reports not serving,
// drains in-flight RPCs for up to grace and stops what is left.
func (g *GRPC) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- g.Server.Serve(lis) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.Health.Shutdown()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		g.Stop()
		<-done
	}
	<-errc
	return nil
}

// boundCall ends a unary call's context max after it arrived unless the
// client's deadline comes first, and answers DEADLINE_EXCEEDED for a call
// that failed because the bound passed.
func boundCall(max time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if d, ok := ctx.Deadline(); ok && time.Until(d) <= max {
			return handler(ctx, req)
		}
		bounded, cancel := context.WithTimeout(ctx, max)
		defer cancel()
		resp, err := handler(bounded, req)
		if err != nil && ctx.Err() == nil && errors.Is(bounded.Err(), context.DeadlineExceeded) {
			return nil, status.Error(codes.DeadlineExceeded, "the call took longer than the server allows")
		}
		return resp, err
	}
}
