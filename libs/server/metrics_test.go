package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/libs/metrics"
)

func TestServeMetrics(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeMetrics(ctx, lis, metrics.NewRegistry(), time.Second) }()
	base := "http://" + lis.Addr().String()

	tests := []struct {
		path string
		code int
		has  string
	}{
		{"/metrics", http.StatusOK, "go_goroutines"},
		{"/healthz", http.StatusOK, "ok"},
		{"/readyz", http.StatusNotFound, ""},
		{"/", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.has) {
				t.Errorf("GET %s = %d %.40q, want %d with %q", tt.path, resp.StatusCode, body, tt.code, tt.has)
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeMetrics: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}
