package proctest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is one service process started by Start.
type Proc struct {
	// Name is the binary's base name, used in messages.
	Name string
	bin  string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	out  *output
}

// Start runs bin with the test's environment plus env (KEY=value entries,
// which win over the inherited ones). The test's cleanup stops the process
// and, if the test failed, logs its output.
func Start(t testing.TB, bin string, env ...string) *Proc {
	t.Helper()
	p := &Proc{Name: filepath.Base(bin), bin: bin, env: env, out: &output{}}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, p.Output())
		}
	})
	return p
}

func (p *Proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin)
	cmd.Env = Env(p.env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("proctest: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

func (p *Proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	_, done := p.current()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Exited is closed when the current process exits.
func (p *Proc) Exited() <-chan struct{} {
	_, done := p.current()
	return done
}

// ExitCode returns the exit status of the current process once it has
// exited, or -1 while it runs or when a signal ended it.
func (p *Proc) ExitCode() int {
	cmd, done := p.current()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Stop sends SIGTERM and waits for the process to exit; after 30s it
// kills it and returns an error saying so. Stopping an exited process does
// nothing.
func (p *Proc) Stop() error {
	cmd, done := p.current()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("proctest: %s ignored SIGTERM for %v and was killed", p.Name, stopTimeout)
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	cmd, done := p.current()
	cmd.Process.Kill()
	<-done
}

// Restart stops the process if it runs and starts it again with the same
// environment, so on the same addresses.
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Error(err)
	}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
}

// Healthcheck runs the binary's `healthcheck` subcommand in the process's
// environment, as the compose file and the images do.
func (p *Proc) Healthcheck() error {
	return Healthcheck(p.bin, p.env...)
}

// Healthcheck runs bin's `healthcheck` subcommand with env added to the
// test's environment (less the services' own variables, see baseEnv).
func Healthcheck(bin string, env ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "healthcheck")
	cmd.Env = Env(env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s healthcheck: %w: %s", filepath.Base(bin), err, bytes.TrimSpace(tail(out, 1024)))
	}
	return nil
}

// WaitHealthy polls the `healthcheck` subcommand until it passes; it fails
// the test when limit passes first or the process exits.
func (p *Proc) WaitHealthy(t testing.TB, limit time.Duration) {
	t.Helper()
	p.wait(t, limit, p.Healthcheck)
}

// WaitHTTP polls url until it answers 200; it fails the test when limit
// passes first or the process exits.
func (p *Proc) WaitHTTP(t testing.TB, url string, limit time.Duration) {
	t.Helper()
	p.wait(t, limit, func() error { return GetOK(url) })
}

// GetOK asks for url once, on a connection of its own that it closes, and
// reports an error unless the answer is 200 OK.
func GetOK(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Close = true // no idle connection left behind for goleak
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func (p *Proc) wait(t testing.TB, limit time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if !p.Running() {
			t.Fatalf("%s exited before it was healthy: %v\n%s", p.Name, err, p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after %v: %v", p.Name, limit, err)
		}
		time.Sleep(pollEvery)
	}
}

// Output returns the last 64 KiB the process (and its earlier runs)
// wrote.
func (p *Proc) Output() string { return p.out.String() }

// output keeps the last outputLimit bytes written to it.
type output struct {
	mu  sync.Mutex
	buf []byte
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, b...)
	if len(o.buf) > outputLimit {
		o.buf = append(o.buf[:0:0], o.buf[len(o.buf)-outputLimit:]...)
	}
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf)
}

// Env returns the environment Start gives a process: the test's own less
// the services' variables (see baseEnv), then env (KEY=value entries, which
// win). For processes that Start does not run, such as a script.
func Env(env ...string) []string { return append(baseEnv(), env...) }

// baseEnv is the test's environment without the services' own variables
// (AUTH_*, CACHE_*, GATEWAY_*, REDIS_URL), so that a setting left in a
// developer's shell never reaches a process a test starts: each test names
// every variable its processes need.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "REDIS_URL" || strings.HasPrefix(name, "AUTH_") ||
			strings.HasPrefix(name, "CACHE_") || strings.HasPrefix(name, "GATEWAY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
