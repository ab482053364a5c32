package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// /metrics is served on the metrics listener only: the public HTTP port,
// which browsers reach through the load balancer, answers 404, while its
// probes stay where the load balancer and the orchestrator ask for them.
func TestMetricsOnlyOnTheMetricsListener(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	tests := []struct {
		base, path string
		code       int
		has        string
	}{
		{r.http, "/metrics", http.StatusNotFound, ""},
		{r.http, "/healthz", http.StatusOK, "ok"},
		{r.http, "/readyz", http.StatusOK, ""},
		{r.metrics, "/metrics", http.StatusOK, "switchboard_gateway_connections"},
		{r.metrics, "/healthz", http.StatusOK, "ok"},
		{r.metrics, "/ws", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.base+tt.path, func(t *testing.T) {
			resp, err := http.Get(tt.base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.has) {
				t.Errorf("GET %s = %d %.60q, want %d with %q", tt.path, resp.StatusCode, body, tt.code, tt.has)
			}
		})
	}
}
