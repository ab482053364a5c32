package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// running is a service binary started by a test on loopback.
type running struct {
	name string
	bin  string
	env  []string // the service's variables, as KEY=value
	http string   // host:port of its HTTP listener (/metrics)
}

// buildService builds services/<name> into dir, with the race detector when
// the tests run with it, so that the packages compiled for the services'
// own tests are reused.
func buildService(t *testing.T, dir, name string) string {
	t.Helper()
	bin := filepath.Join(dir, "switchboard-"+name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = filepath.Join(repoRoot(t), "services", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build services/%s: %v\n%s", name, err, lastLines(out, 20))
	}
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the service until the test ends, then stops it with SIGTERM
// and waits for it. Its output goes to the test log when the test fails.
func (r *running) start(t *testing.T) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(r.bin)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", r.name, lastLines(out.Bytes(), 30))
		}
	})
}

// healthcheck runs the binary's healthcheck subcommand in the service's
// environment, as the compose healthcheck does.
func (r *running) healthcheck() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, "healthcheck")
	cmd.Env = append(os.Environ(), r.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// waitHealthy polls the healthcheck subcommand until it passes.
func (r *running) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := r.healthcheck()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s healthcheck still fails after 30s: %v", r.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

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
	dir := t.TempDir()
	authGRPC, authHTTP := freeAddr(t), freeAddr(t)
	svcs := []*running{
		{name: "auth", http: authHTTP, env: []string{
			"AUTH_GRPC_ADDR=" + authGRPC, "AUTH_HTTP_ADDR=" + authHTTP, "REDIS_URL=", "AUTH_REDIS_URL=",
			"AUTH_ARGON2_MEMORY=1MiB", "AUTH_ARGON2_TIME=1"}},
		{name: "cache", env: []string{"CACHE_GRPC_ADDR=" + freeAddr(t)}},
		{name: "gateway", env: []string{"GATEWAY_GRPC_ADDR=" + freeAddr(t), "AUTH_ADDR=" + authGRPC, "REDIS_URL="}},
	}
	svcs[1].http = freeAddr(t)
	svcs[1].env = append(svcs[1].env, "CACHE_HTTP_ADDR="+svcs[1].http)
	svcs[2].http = freeAddr(t)
	svcs[2].env = append(svcs[2].env, "GATEWAY_HTTP_ADDR="+svcs[2].http)

	for _, r := range svcs {
		r.bin = buildService(t, dir, r.name)
		if err := r.healthcheck(); err == nil {
			t.Fatalf("%s healthcheck passes before the service runs", r.name)
		}
		r.start(t)
		r.waitHealthy(t)
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
