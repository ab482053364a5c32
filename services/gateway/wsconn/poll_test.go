//go:build linux

package wsconn_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"switchboard/services/gateway/wsconn"
)

// newPoller starts a poller that the test's cleanup closes after the
// servers started later.
func newPoller(t *testing.T) *wsconn.Poller {
	t.Helper()
	p, err := wsconn.NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close the poller: %v", err)
		}
	})
	return p
}

// parkedServer echoes, parking its connections between messages, and
// hands each connection to the test on conns when it has room.
func parkedServer(t *testing.T, o wsconn.Options, conns chan<- *wsconn.Conn) *server {
	return startServer(t, o, func(s *server, c *wsconn.Conn) {
		select {
		case conns <- c:
		default:
		}
		s.echoParked(c, limit)
	})
}

// eventually waits up to wait for cond, checking it every millisecond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func parkedCount(p *wsconn.Poller, n int) func() bool {
	return func() bool { return p.Registered() == n }
}

func TestParkedEcho(t *testing.T) {
	for _, tt := range []struct {
		name      string
		threshold int
	}{{"plain", 0}, {"compressed", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPoller(t)
			s := parkedServer(t, wsconn.Options{Poller: p, CompressionThreshold: tt.threshold}, nil)
			c := dial(t, s, deflateClient())
			ctx := testContext(t)

			for _, n := range sizes {
				roundTrip(t, ctx, c, randomText(n))
			}
			if n := p.Registered(); n != 1 {
				t.Errorf("Registered() = %d, want 1", n)
			}
		})
	}
}

func TestParkWithoutPoller(t *testing.T) {
	s := parkedServer(t, wsconn.Options{}, nil)
	c := dial(t, s, nil)
	ctx := testContext(t)

	for _, n := range sizes {
		roundTrip(t, ctx, c, randomText(n))
	}
}

// TestParkedHoldNoGoroutine parks many idle connections, pings each from
// the server, and checks that neither the waiting nor the pongs leave a
// goroutine per connection; then each still echoes.
func TestParkedHoldNoGoroutine(t *testing.T) {
	const n = 200
	p := newPoller(t)
	conns := make(chan *wsconn.Conn, n)
	s := parkedServer(t, wsconn.Options{Poller: p}, conns)
	base := runtime.NumGoroutine()

	clients := make([]*rawClient, n)
	byAddr := make(map[string]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, s, "")
		byAddr[clients[i].nc.LocalAddr().String()] = clients[i]
	}
	eventually(t, "every connection parked", parkedCount(p, n))
	few := func() bool { return runtime.NumGoroutine() < base+n/4 }
	eventually(t, "goroutines of idle connections to end", few)

	for range n {
		conn := <-conns
		c := byAddr[conn.RemoteAddr().String()]
		pinged := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			pinged <- conn.Ping(ctx)
		}()
		if f := c.readFrame(); f.op != opPing {
			t.Fatalf("client %v read opcode %#x, want a ping", conn.RemoteAddr(), f.op)
		}
		c.write(masked(opPong, nil))
		if err := <-pinged; err != nil {
			t.Fatalf("Ping %v: %v", conn.RemoteAddr(), err)
		}
	}
	eventually(t, "goroutines of ponged connections to end", few)

	for i, c := range clients {
		c.write(masked(opText, []byte("still there")))
		if f := c.readFrame(); string(f.payload) != "still there" {
			t.Fatalf("client %d: echo %q", i, f.payload)
		}
	}
}

func TestParkedClientHangsUp(t *testing.T) {
	p := newPoller(t)
	s := parkedServer(t, wsconn.Options{Poller: p}, nil)
	c := dialRaw(t, s, "")
	eventually(t, "the connection parked", parkedCount(p, 1))

	c.nc.Close()

	if err := s.lastError(t); err == nil {
		t.Fatal("the resumed reader read no error")
	}
	eventually(t, "the connection to leave the poller", parkedCount(p, 0))
}

func TestParkedCloseNow(t *testing.T) {
	p := newPoller(t)
	conns := make(chan *wsconn.Conn, 1)
	s := parkedServer(t, wsconn.Options{Poller: p}, conns)
	dialRaw(t, s, "")
	conn := <-conns
	eventually(t, "the connection parked", parkedCount(p, 1))

	if err := conn.CloseNow(); err != nil {
		t.Fatalf("CloseNow: %v", err)
	}

	if n := p.Registered(); n != 0 {
		t.Errorf("Registered() = %d after CloseNow, want 0", n)
	}
	if err := s.lastError(t); !errors.Is(err, wsconn.ErrClosed) {
		t.Fatalf("the resumed reader read %v, want ErrClosed", err)
	}
}

// TestParkedServerClose closes a parked connection from the server: the
// client's answer resumes the reader, which lets Close return early.
func TestParkedServerClose(t *testing.T) {
	p := newPoller(t)
	conns := make(chan *wsconn.Conn, 1)
	s := parkedServer(t, wsconn.Options{Poller: p}, conns)
	c := dialRaw(t, s, "")
	conn := <-conns
	eventually(t, "the connection parked", parkedCount(p, 1))

	closed := make(chan error, 1)
	go func() { closed <- conn.Close(4002, "bye") }()
	if f := c.readFrame(); f.op != opClose || string(f.payload) != "\x0f\xa2bye" {
		t.Fatalf("client read opcode %#x %q, want the close 4002 bye", f.op, f.payload)
	}
	c.write(closeFrame(4002, ""))

	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(4 * time.Second): // Close waits 5 s for an answer it missed
		t.Fatal("Close did not see the client's answer")
	}
	var ce *wsconn.CloseError
	if err := s.lastError(t); !errors.As(err, &ce) || ce.Code != 4002 {
		t.Errorf("the resumed reader read %v, want the close 4002", err)
	}
}

// TestEarlyBytes sends the first frames in the handshake's write: they
// reach the HTTP server's buffer before the connection is taken over,
// and a reader waiting on the socket alone would never see them.
func TestEarlyBytes(t *testing.T) {
	p := newPoller(t)
	s := parkedServer(t, wsconn.Options{Poller: p}, nil)
	second := masked(opText, []byte("second"))

	c, resp := openRaw(t, s, handshakeHeader(), append(masked(opText, []byte("first")), second[:4]...))
	if resp.StatusCode != 101 {
		t.Fatalf("handshake answered %s", resp.Status)
	}
	if f := c.readFrame(); string(f.payload) != "first" {
		t.Fatalf("echo %q, want first", f.payload)
	}
	c.write(second[4:])
	if f := c.readFrame(); string(f.payload) != "second" {
		t.Fatalf("echo %q, want second", f.payload)
	}
}
