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
// listens and passes once it serves, and lints each service's /metrics
// with `promtool check metrics`.
func TestServicesMetricsAndHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the three services")
	}
	tool := promtool(t)
	authGRPC, authHTTP := proctest.FreeAddr(t), proctest.FreeAddr(t)
	cacheHTTP, gatewayHTTP := proctest.FreeAddr(t), proctest.FreeAddr(t)
	svcs := []struct {
		name, http string
		env        []string
	}{
		{"auth", authHTTP, []string{
			"AUTH_GRPC_ADDR=" + authGRPC, "AUTH_HTTP_ADDR=" + authHTTP, "REDIS_URL=", "AUTH_REDIS_URL=",
			"AUTH_ARGON2_MEMORY=1MiB", "AUTH_ARGON2_TIME=1"}},
		{"cache", cacheHTTP, []string{"CACHE_GRPC_ADDR=" + proctest.FreeAddr(t), "CACHE_HTTP_ADDR=" + cacheHTTP}},
		{"gateway", gatewayHTTP, []string{"GATEWAY_GRPC_ADDR=" + proctest.FreeAddr(t),
			"GATEWAY_HTTP_ADDR=" + gatewayHTTP, "AUTH_ADDR=" + authGRPC, "REDIS_URL="}},
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
			body := scrape(t, r.http)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, tool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(body)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", r.name, err, out)
			}
			t.Logf("%s exports %d bytes of metrics", r.name, len(body))
		})
	}
}
