package server

import (
	"context"
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
	// Unary and Stream run after metrics and recovery, in order.
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
	unary := append([]grpc.UnaryServerInterceptor{
		m.UnaryServerInterceptor(), recovery.UnaryServerInterceptor(onPanic),
	}, opts.Unary...)
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
