package wsconn_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/services/gateway/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// limit is the read limit of the servers the tests start, unless a test
// says otherwise.
const limit = 1 << 20

// wait bounds every wait of the tests; it only keeps a broken test from
// hanging.
const wait = 10 * time.Second

// server is an httptest.Server whose handler upgrades every request and
// hands the connection to serve. It tracks its handlers and the readers
// that Park resumes, and waits for them when the test ends.
type server struct {
	*httptest.Server
	running sync.WaitGroup
	ended   chan error // each connection's last read error, in order
}

// startServer starts a server on 127.0.0.1. Connections are the serve
// function's to close; the clients a test dials must be closed before
// the server (register their cleanup after this call).
func startServer(t *testing.T, o wsconn.Options, serve func(*server, *wsconn.Conn)) *server {
	t.Helper()
	s := &server{ended: make(chan error, 512)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.running.Add(1)
		defer s.running.Done()
		c, err := wsconn.Upgrade(w, r, o)
		if err != nil {
			return
		}
		serve(s, c)
	}))
	t.Cleanup(func() {
		s.Close()
		s.running.Wait()
	})
	return s
}

// wsURL is the server's address with the ws scheme.
func (s *server) wsURL() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

// echo answers every message with the same text until a read fails.
func (s *server) echo(c *wsconn.Conn, limit int64) {
	for s.echoOne(c, limit) {
	}
}

// echoParked answers the messages already buffered, then parks the
// connection; each resume answers one message and does the same again.
func (s *server) echoParked(c *wsconn.Conn, limit int64) {
	for c.Buffered() > 0 {
		if !s.echoOne(c, limit) {
			return
		}
	}
	s.running.Add(1)
	c.Park(func() {
		defer s.running.Done()
		if s.echoOne(c, limit) {
			s.echoParked(c, limit)
		}
	})
}

// echoOne reads one message and sends it back; control frames alone
// (ErrNoMessage) send nothing. On an error it closes the connection,
// reports the error and returns false.
func (s *server) echoOne(c *wsconn.Conn, limit int64) bool {
	_, p, err := c.ReadMessage(limit)
	switch {
	case errors.Is(err, wsconn.ErrNoMessage):
		return true
	case err == nil:
		err = c.WriteText(p)
	}
	if err != nil {
		c.CloseNow()
		s.ended <- err
		return false
	}
	return true
}

// lastError returns the next connection's last read error.
func (s *server) lastError(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.ended:
		return err
	case <-time.After(wait):
		t.Fatal("no connection ended")
		return nil
	}
}

// echoServer starts a server that echoes with a goroutine per connection.
func echoServer(t *testing.T, o wsconn.Options) *server {
	return startServer(t, o, func(s *server, c *wsconn.Conn) { s.echo(c, limit) })
}
