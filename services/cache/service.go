package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"switchboard/libs/metrics"
	"switchboard/libs/server"
	"switchboard/libs/store"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// service is one cache replica: its caches, the gRPC API and the HTTP
// endpoints for /metrics and /healthz.
type service struct {
	// Read-only after construction.
	cfg    Config
	log    *slog.Logger
	caches *caches
	api    *api
	grpc   *server.GRPC
	http   *http.Server

	// Safe on its own.
	ready atomic.Bool // /healthz answers 200 only while true

	stopOnce sync.Once
	stopping chan struct{} // closed when serving ends; read by Watch
}

// newService builds the caches and servers of cfg. clock is nil outside
// tests.
func newService(cfg Config, log *slog.Logger, clock store.Clock) (*service, error) {
	cs, err := newCaches(cfg.Caches, clock)
	if err != nil {
		return nil, err
	}
	s := &service{cfg: cfg, log: log, caches: cs, stopping: make(chan struct{})}
	s.api = &api{caches: cs, limits: cfg.Limits, log: log, stopping: s.stopping}

	reg := metrics.NewRegistry()
	reg.MustRegister(newStatsCollector(cs))
	opts := server.GRPCOptions{
		Registry: reg, Logger: log, MaxRecvBytes: cfg.Limits.MaxRequestBytes, MaxCallTime: cfg.MaxCallTime,
	}
	if cfg.Credential != "" {
		unary, stream := server.NewCredential(cfg.Credential).Require(isCacheMethod)
		opts.Unary = []grpc.UnaryServerInterceptor{unary}
		opts.Stream = []grpc.StreamServerInterceptor{stream}
	}
	s.grpc = server.NewGRPC(opts)
	cachev1.RegisterCacheServiceServer(s.grpc, s.api)
	s.http = server.NewHTTPServer(s.routes(reg))
	return s, nil
}

// isCacheMethod reports whether method belongs to cache.v1; health and
// reflection stay open so probes need no credential.
func isCacheMethod(method string) bool {
	return strings.HasPrefix(method, "/"+cachev1.CacheService_ServiceDesc.ServiceName+"/")
}

func (s *service) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// serve serves gRPC on grpcLis and HTTP on httpLis until ctx is cancelled
// or one server fails, then stops both within the grace period, ends every
// Watch stream and closes the caches. It returns the first server error.
func (s *service) serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.caches.close()

	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(ctx, grpcLis, s.cfg.Grace) }()
	go func() { errc <- server.ServeHTTP(ctx, httpLis, s.http, s.cfg.Grace) }()
	s.grpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.ready.Store(true)

	var first error
	left := 2
	select {
	case <-ctx.Done():
	case first = <-errc:
		left--
	}
	cancel()
	s.ready.Store(false)
	s.stop()
	for ; left > 0; left-- {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// stop ends every Watch stream, so that a graceful stop does not wait on
// streams that never end by themselves.
func (s *service) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }
