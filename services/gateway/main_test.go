package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/proctest"
	"switchboard/services/gateway/internal/fakeauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The binary serves with its configuration from the environment, its
// healthcheck subcommand sees it ready, and it stops on cancellation.
func TestRun(t *testing.T) {
	a, err := fakeauth.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	httpAddr, metricsAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	t.Setenv("GATEWAY_HTTP_ADDR", httpAddr)
	t.Setenv("GATEWAY_METRICS_ADDR", metricsAddr)
	t.Setenv("GATEWAY_GRPC_ADDR", proctest.FreeAddr(t))
	t.Setenv("AUTH_ADDR", a.Addr)
	t.Setenv("GATEWAY_AUTH_CREDENTIAL", fakeauth.Credential)
	t.Setenv("GATEWAY_WEB_AUTH_URL", "http://127.0.0.1:7201")
	t.Setenv("GATEWAY_LOG_LEVEL", "error")
	t.Setenv("GATEWAY_DRAIN", "10ms")

	if err := run(context.Background(), []string{"healthcheck"}); err == nil {
		t.Fatal("healthcheck passed with nothing listening")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for run(context.Background(), []string{"healthcheck"}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + httpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("demo page: %s", resp.Status)
	}
	for _, c := range []struct {
		url  string
		code int
	}{
		{"http://" + httpAddr + "/metrics", http.StatusNotFound},
		{"http://" + metricsAddr + "/metrics", http.StatusOK},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("GET %s: %s, want %d", c.url, resp.Status, c.code)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	t.Setenv("GATEWAY_QUEUE_BYTES", "lots")
	t.Setenv("GATEWAY_METRICS_ADDR", "127.0.0.1")
	err := run(context.Background(), nil)
	if err == nil {
		t.Fatal("started with a bad variable")
	}
	for _, name := range []string{"GATEWAY_QUEUE_BYTES", "GATEWAY_METRICS_ADDR"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if err := run(context.Background(), []string{"dance"}); err == nil {
		t.Fatal("accepted an unknown subcommand")
	}
}
