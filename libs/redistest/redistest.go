// Package redistest starts a real redis-server for tests, on a free loopback
// port, with persistence off, and stops it when the test ends.
//
// Tests that need Redis fail (they are not skipped) when redis-server is
// missing: `.ci/run` installs it, and a green run without it would prove
// nothing. Fault tests use Kill, Restart, Pause and Resume.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/proctest"
)

// Server is one redis-server process owned by a test.
type Server struct {
	// Addr is host:port, fixed for the server's life, across restarts.
	Addr string

	tb   testing.TB
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// Start runs redis-server on a free loopback port and stops it at cleanup.
// Extra arguments are passed to redis-server as they are.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not found (apt-get install redis-server): %v", err)
	}
	port := proctest.FreePort(tb, busOffset)
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		tb:   tb,
		args: append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", tb.TempDir(),
			"--protected-mode", "no",
		}, extra...),
	}
	s.args = append([]string{path}, s.args...)
	s.start()
	tb.Cleanup(s.Kill)
	return s
}

// URL is the server's redis:// address.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a go-redis client closed at cleanup.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = new(bytes.Buffer)
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.tb.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr); err == nil {
			return
		} else if time.Now().After(deadline) {
			s.tb.Fatalf("redis-server on %s did not answer: %v\n%s", s.Addr, err, s.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill stops the server at once with SIGKILL; the data is gone.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // a paused server must be able to die
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Running reports whether the server has been started and not killed.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Restart kills the server and starts a new, empty one on the same port.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.start()
}

// Pause stops the process with SIGSTOP: connections stay open, nothing is
// answered.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(sig)
	}
}

func ping(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// busOffset is how far above its port a cluster node binds its bus port,
// as redis-server sets it. Start keeps that port free too, so a cluster
// node restarted by a fault test finds both.
const busOffset = 10000

// String describes the server for test messages.
func (s *Server) String() string { return fmt.Sprintf("redis-server on %s", s.Addr) }
