package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/libs/proctest"
	"switchboard/libs/redistest"
)

// Bounds of a make run test: starting three race-built services one after
// the other, and stopping them.
const (
	runStartLimit = 90 * time.Second
	runStopLimit  = 30 * time.Second
)

// runAddrs are the listen addresses of one make run, each a free loopback
// port.
type runAddrs struct {
	authGRPC, authHTTP, authMetrics, cacheGRPC, cacheHTTP string
	gatewayHTTP, gatewayGRPC, gatewayMetrics              string
}

func freeRunAddrs(t *testing.T) runAddrs {
	t.Helper()
	f := func() string { return proctest.FreeAddr(t) }
	return runAddrs{f(), f(), f(), f(), f(), f(), f(), f()}
}

// env sets the addresses through the services' own variables, as a user
// of make run would.
func (a runAddrs) env() []string {
	return []string{
		"AUTH_GRPC_ADDR=" + a.authGRPC, "AUTH_HTTP_ADDR=" + a.authHTTP, "AUTH_METRICS_ADDR=" + a.authMetrics,
		"CACHE_GRPC_ADDR=" + a.cacheGRPC, "CACHE_HTTP_ADDR=" + a.cacheHTTP,
		"GATEWAY_HTTP_ADDR=" + a.gatewayHTTP, "GATEWAY_GRPC_ADDR=" + a.gatewayGRPC,
		"GATEWAY_METRICS_ADDR=" + a.gatewayMetrics,
	}
}

// runLocal is one run of deploy/run-local.sh in a process group of its own,
// as a shell runs a foreground job, so that Ctrl-C can be sent the same
// way and what is left of the group checked.
type runLocal struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed once the script has exited
}

// syncBuffer is the script's output, written by the process and read by
// the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startRunLocal runs the script on the binaries proctest builds, with env
// added to the test's environment (less the services' variables).
func startRunLocal(t *testing.T, env ...string) *runLocal {
	t.Helper()
	for _, name := range services {
		proctest.Build(t, name)
	}
	cmd := exec.Command(filepath.Join(repoRoot(t), "deploy", "run-local.sh"))
	cmd.Env = proctest.Env(append([]string{
		"SWITCHBOARD_BIN=" + filepath.Dir(proctest.Build(t, "auth")),
		"SWITCHBOARD_RUN=" + t.TempDir(),
		// Cheap hashes: the test logs in once, it does not measure hashing.
		"AUTH_ARGON2_MEMORY=1MiB", "AUTH_ARGON2_TIME=1",
	}, env...)...)
	r := &runLocal{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // only if a check failed first
		<-r.done
		if t.Failed() {
			t.Logf("run-local.sh output:\n%s", r.out)
		}
	})
	return r
}

// waitFor waits until the output holds every one of want, failing the
// test if the script exits first.
func (r *runLocal) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(runStartLimit)
	for !containsAll(r.out.String(), want) {
		select {
		case <-r.done:
			t.Fatalf("run-local.sh exited (%v) before printing %q", r.cmd.ProcessState, want)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run-local.sh did not print %q within %v", want, runStartLimit)
		}
	}
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// exit waits for the script to exit and returns its status; it then
// checks that no process of its group is left.
func (r *runLocal) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(runStopLimit):
		t.Fatalf("run-local.sh still runs %v later", runStopLimit)
	}
	if err := syscall.Kill(-r.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("a process of the run is left after the script exited (kill -0 on the group: %v)", err)
	}
	return r.cmd.ProcessState.ExitCode()
}

// TestMakeRun runs deploy/run-local.sh as make run does, embedded and with
// Redis: one line per service, with where its metrics are served, and the
// demo page's URL are printed, the gateway answers, each printed metrics
// URL serves, the printed demo login works, and Ctrl-C stops every process
// with status 0.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the three services")
	}
	tests := []struct {
		name    string
		redis   bool
		backend string
	}{
		{"embedded", false, "backend: embedded"},
		{"redis", true, "backend: Redis at redis://127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := freeRunAddrs(t)
			env := a.env()
			if tt.redis {
				env = append(env, "REDIS_URL="+redistest.Start(t).URL())
			}
			r := startRunLocal(t, env...)
			metrics := []string{
				"http://" + a.authMetrics + "/metrics", "http://" + a.cacheHTTP + "/metrics",
				"http://" + a.gatewayMetrics + "/metrics",
			}
			r.waitFor(t, "auth     gRPC "+a.authGRPC, "cache    gRPC "+a.cacheGRPC,
				"gateway  WebSocket ws://"+a.gatewayHTTP+"/ws", tt.backend,
				"demo page: http://"+a.gatewayHTTP+"/  (agent@example.com / switchboard-demo)")
			r.waitFor(t, metrics...)
			for _, path := range []string{"/healthz", "/"} {
				if err := proctest.GetOK("http://" + a.gatewayHTTP + path); err != nil {
					t.Errorf("gateway: %v", err)
				}
			}
			for _, u := range metrics {
				if err := proctest.GetOK(u); err != nil {
					t.Errorf("metrics: %v", err)
				}
			}
			demoLogin(t, a.authHTTP, "http://"+a.gatewayHTTP)

			syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT) // Ctrl-C
			if code := r.exit(t); code != 0 {
				t.Errorf("exit status %d after Ctrl-C, want 0", code)
			}
		})
	}
}

// TestMakeRunPortTaken runs the script with the cache's port taken: it
// says the cache did not start, stops auth, and exits non-zero.
func TestMakeRunPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the services")
	}
	a := freeRunAddrs(t)
	l, err := net.Listen("tcp", a.cacheGRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := startRunLocal(t, a.env()...)
	if code := r.exit(t); code == 0 {
		t.Error("exit status 0 when the cache could not start")
	}
	if out := r.out.String(); !strings.Contains(out, "cache did not start") || !strings.Contains(out, "stopped") {
		t.Errorf("output does not say the cache did not start and the rest stopped:\n%s", out)
	}
}

// TestMakeRunServiceDies kills the cache once make run is up: the script
// says a service stopped, stops the others, and exits non-zero.
func TestMakeRunServiceDies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the three services")
	}
	a := freeRunAddrs(t)
	r := startRunLocal(t, a.env()...)
	r.waitFor(t, "demo page: http://"+a.gatewayHTTP+"/")
	cache := r.child(t, "switchboard-cache")
	syscall.Kill(cache, syscall.SIGKILL)
	if code := r.exit(t); code == 0 {
		t.Error("exit status 0 when the cache died")
	}
	if out := r.out.String(); !strings.Contains(out, "a service stopped by itself") || !strings.Contains(out, "stopped") {
		t.Errorf("output does not say a service stopped and the rest stopped:\n%s", out)
	}
}

// child returns the pid of the script's child process named name.
func (r *runLocal) child(t *testing.T, name string) int {
	t.Helper()
	pid := strconv.Itoa(r.cmd.Process.Pid)
	children, err := os.ReadFile("/proc/" + pid + "/task/" + pid + "/children")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range strings.Fields(string(children)) {
		exe, _ := os.Readlink("/proc/" + c + "/exe")
		if filepath.Base(exe) == name {
			n, _ := strconv.Atoi(c)
			return n
		}
	}
	t.Fatalf("no child process %s of run-local.sh among %q", name, children)
	return 0
}

// demoLogin logs in through auth's token endpoint as the demo page does,
// from the gateway's origin, with the login make run prints.
func demoLogin(t *testing.T, authHTTP, origin string) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "email": {"agent@example.com"}, "password": {"switchboard-demo"}}
	req, err := http.NewRequest(http.MethodPost, "http://"+authHTTP+"/v1/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		UserID      string `json:"user_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("demo login: %s, %v", resp.Status, err)
	}
	if tok.AccessToken == "" || tok.UserID != "agent" {
		t.Fatalf("demo login answered user %q", tok.UserID)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("auth allows origin %q, want the gateway's %q (the demo page could not log in)", got, origin)
	}
}
