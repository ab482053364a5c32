package deploy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"switchboard/libs/proctest"
)

func scrape(t *testing.T, addr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	return body
}

// TestServicesMetricsAndHealthcheck starts auth, cache and gateway on
// loopback with their embedded defaults, checks that the `healthcheck`
// subcommand the compose file and the images run fails before a service
// listens and passes once it serves, lints each service's /metrics with
// `promtool check metrics`, and checks that the public HTTP ports of auth
// and gateway answer 404 for /metrics.
func TestServicesMetricsAndHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the three services")
	}
	tool := promtool(t)
	authGRPC, authHTTP, authMetrics := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)
	cacheHTTP, gatewayHTTP, gatewayMetrics := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)
	svcs := []struct {
		name    string
		metrics string // serves /metrics
		public  string // must not; empty: the service has no public HTTP port
		env     []string
	}{
		{"auth", authMetrics, authHTTP, []string{
			"AUTH_GRPC_ADDR=" + authGRPC, "AUTH_HTTP_ADDR=" + authHTTP, "AUTH_METRICS_ADDR=" + authMetrics,
			"REDIS_URL=", "AUTH_REDIS_URL=", "AUTH_ARGON2_MEMORY=1MiB", "AUTH_ARGON2_TIME=1"}},
		{"cache", cacheHTTP, "", []string{"CACHE_GRPC_ADDR=" + proctest.FreeAddr(t), "CACHE_HTTP_ADDR=" + cacheHTTP}},
		{"gateway", gatewayMetrics, gatewayHTTP, []string{"GATEWAY_GRPC_ADDR=" + proctest.FreeAddr(t),
			"GATEWAY_HTTP_ADDR=" + gatewayHTTP, "GATEWAY_METRICS_ADDR=" + gatewayMetrics,
			"AUTH_ADDR=" + authGRPC, "REDIS_URL="}},
	}
	for _, r := range svcs {
		bin := proctest.Build(t, r.name)
		if err := proctest.Healthcheck(bin, r.env...); err == nil {
			t.Fatalf("%s healthcheck passes before the service runs", r.name)
		}
		proctest.Start(t, bin, r.env...).WaitHealthy(t, 30*time.Second)
	}
	for _, r := range svcs {
		t.Run(r.name, func(t *testing.T) {
			body := scrape(t, r.metrics)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, tool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(body)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", r.name, err, out)
			}
			t.Logf("%s exports %d bytes of metrics", r.name, len(body))
			if r.public == "" {
				return
			}
			resp, err := http.Get("http://" + r.public + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s's public HTTP port answers /metrics with %s, want 404", r.name, resp.Status)
			}
		})
	}
}
