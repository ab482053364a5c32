package server

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchboard/libs/metrics"
)

// MetricsHandler serves a private metrics listener, kept apart from a
// service's public port: GET /metrics serves reg in the Prometheus text
// format and GET /healthz answers 200 while the process runs; any other
// path is 404.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

// ServeMetrics serves MetricsHandler(reg) on lis like ServeHTTP.
func ServeMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry, grace time.Duration) error {
	return ServeHTTP(ctx, lis, NewHTTPServer(MetricsHandler(reg)), grace)
}
