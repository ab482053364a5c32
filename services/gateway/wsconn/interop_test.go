package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/services/gateway/wsconn"
)

// testContext ends with the test, or after wait.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a coder/websocket client to s; the test's cleanup closes
// it. A nil o dials without compression.
func dial(t *testing.T, s *server, o *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	c, _ := dialAnswer(t, s, o)
	return c
}

// dialAnswer is dial that also returns the handshake's answer.
func dialAnswer(t *testing.T, s *server, o *websocket.DialOptions) (*websocket.Conn, *http.Response) {
	t.Helper()
	if o == nil {
		o = &websocket.DialOptions{}
	}
	o.HTTPClient = s.Client()
	c, resp, err := websocket.Dial(testContext(t), s.wsURL(), o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(2 * limit)
	return c, resp
}

// deflateClient offers permessage-deflate and compresses every message.
func deflateClient() *websocket.DialOptions {
	return &websocket.DialOptions{
		CompressionMode:      websocket.CompressionNoContextTakeover,
		CompressionThreshold: 1,
	}
}

// randomText returns n letters that do not compress to nothing.
func randomText(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + byte(r.IntN(26))
	}
	return p
}

// roundTrip sends p and checks that the same text comes back.
func roundTrip(t *testing.T, ctx context.Context, c *websocket.Conn, p []byte) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, p); err != nil {
		t.Fatalf("write %d bytes: %v", len(p), err)
	}
	typ, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read the echo of %d bytes: %v", len(p), err)
	}
	if typ != websocket.MessageText || !bytes.Equal(got, p) {
		t.Fatalf("echo of %d bytes: got %v of %d bytes, want the same text", len(p), typ, len(got))
	}
}

func TestEchoKeepsOrder(t *testing.T) {
	s := echoServer(t, wsconn.Options{})
	c := dial(t, s, nil)
	ctx := testContext(t)

	const n = 500
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "message %d", i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	for i := range n {
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if want := fmt.Sprintf("message %d", i); string(p) != want {
			t.Fatalf("read %q, want %q", p, want)
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// sizes cross the 7-bit, 16-bit and 64-bit length encodings and the
// reader's 4 KiB buffer.
var sizes = []int{0, 1, 125, 126, 127, 4095, 4096, 4097, 65535, 65536, 200 << 10}

func TestEchoSizes(t *testing.T) {
	s := echoServer(t, wsconn.Options{})
	c := dial(t, s, nil)
	ctx := testContext(t)

	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) { roundTrip(t, ctx, c, randomText(n)) })
	}
}

func TestEchoCompressed(t *testing.T) {
	for _, threshold := range []int{1, 1 << 30} {
		t.Run(fmt.Sprintf("threshold %d", threshold), func(t *testing.T) {
			s := echoServer(t, wsconn.Options{CompressionThreshold: threshold})
			c, resp := dialAnswer(t, s, deflateClient())
			ctx := testContext(t)
			if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
				t.Fatal("permessage-deflate not negotiated")
			}

			for _, n := range sizes {
				roundTrip(t, ctx, c, randomText(n))
			}
			roundTrip(t, ctx, c, bytes.Repeat([]byte("compressible "), 50_000))
		})
	}
}

func TestFragmentedFromClient(t *testing.T) {
	for _, o := range []struct {
		name string
		dial *websocket.DialOptions
	}{{"plain", nil}, {"compressed", deflateClient()}} {
		t.Run(o.name, func(t *testing.T) {
			s := echoServer(t, wsconn.Options{CompressionThreshold: 1})
			c := dial(t, s, o.dial)
			ctx := testContext(t)

			w, err := c.Writer(ctx, websocket.MessageText)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for _, n := range []int{1, 200, 5000, 70000} {
				part := randomText(n)
				want = append(want, part...)
				if _, err := w.Write(part); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			_, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes back, want the %d sent", len(got), len(want))
			}
		})
	}
}

func TestClientPingIsAnswered(t *testing.T) {
	s := echoServer(t, wsconn.Options{})
	c := dial(t, s, nil)
	ctx := c.CloseRead(testContext(t))

	for range 3 {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
}

// pingServer pings every client once, waiting up to timeout for the
// pong while a reader echoes, and reports what Ping returned.
func pingServer(t *testing.T, timeout time.Duration) (*server, chan error) {
	pinged := make(chan error, 1)
	s := startServer(t, wsconn.Options{}, func(s *server, c *wsconn.Conn) {
		read := make(chan struct{})
		go func() {
			defer close(read)
			s.echo(c, limit)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		pinged <- c.Ping(ctx)
		cancel()
		<-read
	})
	return s, pinged
}

func TestServerPing(t *testing.T) {
	s, pinged := pingServer(t, wait)
	c := dial(t, s, nil)
	c.CloseRead(testContext(t)) // answers pings

	if err := <-pinged; err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestServerPingWithoutPong(t *testing.T) {
	s, pinged := pingServer(t, 50*time.Millisecond)
	dial(t, s, nil) // reads nothing, so answers no ping

	if err := <-pinged; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping = %v, want %v", err, context.DeadlineExceeded)
	}
}

func TestServerClose(t *testing.T) {
	type result struct {
		err  error
		took time.Duration
	}
	closed := make(chan result, 1)
	s := startServer(t, wsconn.Options{}, func(s *server, c *wsconn.Conn) {
		read := make(chan struct{})
		go func() {
			defer close(read)
			s.echo(c, limit)
		}()
		start := time.Now()
		err := c.Close(4001, "going away")
		closed <- result{err, time.Since(start)}
		<-read
	})
	c := dial(t, s, nil)

	_, _, err := c.Read(testContext(t))
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "going away" {
		t.Fatalf("client read %v, want the close 4001 going away", err)
	}

	r := <-closed
	if r.err != nil {
		t.Errorf("Close: %v", r.err)
	}
	// Close waits 5 s for an answer it does not get.
	if r.took > 4*time.Second {
		t.Errorf("Close took %v: the client's answer was missed", r.took)
	}
	var got *wsconn.CloseError
	if err := s.lastError(t); !errors.As(err, &got) || got.Code != 4001 {
		t.Errorf("server read %v, want the client's answer with 4001", err)
	}
}

func TestClientClose(t *testing.T) {
	s := echoServer(t, wsconn.Options{})
	c := dial(t, s, nil)

	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("client Close: %v (the server did not answer)", err)
	}

	err := s.lastError(t)
	var ce *wsconn.CloseError
	if !errors.As(err, &ce) || ce.Code != 1000 || ce.Reason != "bye" {
		t.Fatalf("ReadMessage = %v, want *CloseError 1000 bye", err)
	}
}
