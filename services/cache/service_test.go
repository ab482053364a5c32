package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"switchboard/libs/proctest"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestMetrics(t *testing.T) {
	ts := startServer(t, testConfig(t), nil)
	c := dial(t, ts.addr)
	ctx := testCtx(t)

	if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "items", Key: "a", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "a", "b"} {
		if _, err := c.Get(ctx, &cachev1.GetRequest{Cache: "items", Key: k}); err != nil {
			t.Fatal(err)
		}
	}

	code, body := httpGet(t, "http://"+ts.httpAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`switchboard_cache_hits_total{cache="items"} 2`,
		`switchboard_cache_misses_total{cache="items"} 1`,
		`switchboard_cache_entries{cache="items"} 1`,
		`switchboard_cache_max_entries{cache="items"} 100`,
		`switchboard_cache_max_bytes{cache="items"} 1.048576e+06`,
		`switchboard_cache_evictions_total{cache="tiny"} 0`,
		`switchboard_cache_expirations_total{cache="ttl"} 0`,
		`switchboard_cache_watchers{cache="wide"} 0`,
		`switchboard_cache_watch_dropped_events_total{cache="small"} 0`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Get",grpc_service="switchboard.cache.v1.CacheService",grpc_type="unary"} 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(body, `switchboard_cache_bytes{cache="items"} `) {
		t.Errorf("/metrics lacks the bytes gauge")
	}

	if code, body := httpGet(t, "http://"+ts.httpAddr+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
}

func TestHealthcheckSubcommand(t *testing.T) {
	ts := startServer(t, testConfig(t), nil)
	ctx := testCtx(t)

	t.Setenv("CACHE_GRPC_ADDR", ts.addr)
	if err := run(ctx, []string{"healthcheck"}); err != nil {
		t.Fatalf("healthcheck of a serving replica: %v", err)
	}
	t.Setenv("CACHE_GRPC_ADDR", proctest.FreeAddr(t))
	if err := run(ctx, []string{"healthcheck"}); err == nil {
		t.Fatal("healthcheck of nothing succeeded")
	}
	if err := run(ctx, []string{"nonsense"}); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("unknown subcommand: %v", err)
	}
}

// run refuses to start on a bad variable and names it.
func TestRunRefusesBadConfig(t *testing.T) {
	t.Setenv("CACHE_CACHES", "users:lru:lots:5m:1MiB")
	t.Setenv("CACHE_GRPC_ADDR", "127.0.0.1:0")
	t.Setenv("CACHE_HTTP_ADDR", "127.0.0.1:0")
	err := run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "CACHE_CACHES") || !strings.Contains(err.Error(), "lots") {
		t.Fatalf("run = %v, want an error naming CACHE_CACHES and the bad part", err)
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		":7300":          "127.0.0.1:7300",
		"0.0.0.0:7300":   "127.0.0.1:7300",
		"[::]:7300":      "127.0.0.1:7300",
		"10.1.2.3:7300":  "10.1.2.3:7300",
		"cache-0:7300":   "cache-0:7300",
		"127.0.0.1:7300": "127.0.0.1:7300",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
