package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/grpctest"
	"switchboard/libs/redistest"
	"switchboard/libs/server"
	gatewayv1 "switchboard/proto/switchboard/gateway/v1"
	"switchboard/services/gateway/gateway"
)

// fromAddress is an HTTP client whose connections leave from the loopback
// address ip (Linux answers on all of 127.0.0.0/8), so one test can be
// several client addresses. It counts the bytes it writes.
type fromAddress struct {
	client  *http.Client
	written atomic.Int64
}

func newFromAddress(t *testing.T, ip string) *fromAddress {
	t.Helper()
	f := &fromAddress{}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &f.written}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	f.client = &http.Client{Transport: tr}
	return f
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// upgrade dials the replica's WebSocket and returns the connection, or
// the HTTP status of the refusal.
func (f *fromAddress) upgrade(t *testing.T, r *replica, h http.Header) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, r.ws, &websocket.DialOptions{HTTPClient: f.client, HTTPHeader: h})
	if err == nil {
		t.Cleanup(func() { ws.CloseNow() })
		return ws, http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return nil, resp.StatusCode
}

// stream opens the event stream and returns the HTTP status; a stream
// that opens is closed at once.
func (f *fromAddress) stream(t *testing.T, r *replica, token string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.http+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// One address may hold GATEWAY_MAX_CONNECTIONS_PER_ADDRESS connections,
// WebSocket and event-stream together; past that it is refused with 429
// before any upgrade, while another address is served, and so is the same
// address once one of its connections ends.
func TestConnectionsPerAddress(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.MaxPerAddress = 2 })
	tok := a.Issue("alice", "s1", time.Hour)
	one, other := newFromAddress(t, "127.0.0.1"), newFromAddress(t, "127.0.0.2")

	first, st := one.upgrade(t, r, bearer(tok))
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("first connection: %d", st)
	}
	one.upgrade(t, r, bearer(tok))
	spoofed := bearer(tok)
	spoofed.Set("X-Forwarded-For", "203.0.113.1") // no proxy is trusted: ignored
	if _, st := one.upgrade(t, r, spoofed); st != http.StatusTooManyRequests {
		t.Fatalf("third connection from one address: %d, want 429", st)
	}
	if st := one.stream(t, r, tok); st != http.StatusTooManyRequests {
		t.Fatalf("event stream from the same address: %d, want 429", st)
	}
	if _, st := other.upgrade(t, r, bearer(tok)); st != http.StatusSwitchingProtocols {
		t.Fatalf("connection from another address: %d, want 101", st)
	}

	first.Close(websocket.StatusNormalClosure, "")
	poll(t, "a place freed for the first address", func() bool {
		ws, st := one.upgrade(t, r, bearer(tok))
		if ws != nil {
			ws.CloseNow()
		}
		return st == http.StatusSwitchingProtocols
	})
}

// Behind a trusted proxy the limit counts the address X-Forwarded-For
// names, not the proxy's.
func TestConnectionsPerAddressBehindProxy(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) {
		c.MaxPerAddress = 1
		c.TrustedProxies, _ = server.ParseTrustedProxies([]string{"127.0.0.0/8"})
	})
	tok := a.Issue("alice", "s1", time.Hour)
	proxy := newFromAddress(t, "127.0.0.1")
	from := func(client string) http.Header {
		h := bearer(tok)
		h.Set("X-Forwarded-For", client)
		return h
	}
	if _, st := proxy.upgrade(t, r, from("203.0.113.1")); st != http.StatusSwitchingProtocols {
		t.Fatalf("first client: %d", st)
	}
	if _, st := proxy.upgrade(t, r, from("198.51.100.9, 203.0.113.1")); st != http.StatusTooManyRequests {
		t.Fatalf("the same client again, with a spoofed left part: %d, want 429", st)
	}
	if _, st := proxy.upgrade(t, r, from("203.0.113.2")); st != http.StatusSwitchingProtocols {
		t.Fatalf("another client through the same proxy: %d, want 101", st)
	}
}

// A small permessage-deflate frame that inflates past
// GATEWAY_MAX_MESSAGE_BYTES closes its connection with 3504 after reading
// no more than the limit; the replica serves others meanwhile.
func TestCompressedFrameInflatesPastLimit(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.MaxMessageBytes = 1024 })
	bystander := dial(t, r, a.Issue("bob", "s2", time.Hour))
	bystander.connected()

	f := newFromAddress(t, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, r.ws, &websocket.DialOptions{
		HTTPClient: f.client, HTTPHeader: bearer(a.Issue("alice", "s1", time.Hour)),
		CompressionMode: websocket.CompressionNoContextTakeover, CompressionThreshold: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatal("permessage-deflate not negotiated")
	}
	frame := []byte(`{"id":1,"type":"ping","ts":"` + strings.Repeat("a", 1<<20) + `"}`)
	before := f.written.Load()
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		t.Fatal(err)
	}
	if n := f.written.Load() - before; n >= 1024*2 {
		t.Fatalf("the 1 MiB frame took %d bytes on the wire; it must be small to show the bomb", n)
	}
	_, _, err = ws.Read(ctx)
	for err == nil {
		_, _, err = ws.Read(ctx)
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusCode(protocol.CloseMessageTooBig) {
		t.Fatalf("closed with %d (%v), want %d", got, err, protocol.CloseMessageTooBig)
	}
	if p := bystander.call(protocol.Request{Type: protocol.TypePing}); p.Error != nil {
		t.Fatalf("bystander: %v", p.Error)
	}
	dial(t, r, a.Issue("carol", "s3", time.Hour)).connected()
}

// PublishService refuses a message over its size cap with
// RESOURCE_EXHAUSTED, and bounds a call without deadline by
// GATEWAY_MAX_CALL_TIME: with Redis stalled, it is answered
// DEADLINE_EXCEEDED at the bound, well before the request timeout (5s).
// Well-behaved calls are served after each.
func TestPublishServiceAbuse(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r := startReplica(t, a, rs.URL(), func(c *gateway.Config) {
		c.Conn.MaxMessageBytes = 1024
		c.MaxCallTime = 300 * time.Millisecond
	})
	client := gatewayv1.NewPublishServiceClient(grpctest.Dial(t, r.grpcAddr, server.WithCredential(serviceCred, false)))
	ok := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := client.Publish(ctx, &gatewayv1.PublishRequest{Room: "user:alice", Data: []byte(`1`)}); err != nil {
			t.Fatalf("well-behaved publish %s: %v", what, err)
		}
	}

	big := &gatewayv1.PublishRequest{Room: "user:alice", Data: []byte(`"` + strings.Repeat("x", 64<<10) + `"`)}
	if _, err := client.Publish(context.Background(), big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized publish: %v, want RESOURCE_EXHAUSTED", err)
	}
	ok("after the oversized one")

	rs.Pause()
	start := time.Now()
	_, err := client.Publish(context.Background(), &gatewayv1.PublishRequest{Room: "user:alice", Data: []byte(`2`)})
	took := time.Since(start)
	rs.Resume()
	if status.Code(err) != codes.DeadlineExceeded || took > 3*time.Second {
		t.Fatalf("publish without deadline on a stalled Redis: %v after %s, want DEADLINE_EXCEEDED at about 300ms", err, took)
	}
	ok("after the stalled one")
}

// Handshakes that never finish: connections that send part of an upgrade
// request and stall are closed by the header timeout, upgrades that never
// authenticate by the auth deadline (3005), while a well-behaved client
// connects and gets its messages.
func TestHandshakesThatNeverFinish(t *testing.T) {
	const headerTimeout = 500 * time.Millisecond
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) {
		c.HeaderTimeout = headerTimeout
		c.Conn.AuthDeadline = 500 * time.Millisecond
	})
	start := time.Now()
	stalled := slowLoris(t, r, 50)
	silent := make([]*client, 20)
	for i := range silent {
		silent[i] = dial(t, r, "")
	}

	c := dial(t, r, a.Issue("alice", "s1", time.Hour))
	c.connected()
	publishHTTP(t, r, "user:alice", `"served"`)
	if m := c.message("user:alice"); string(m.Data) != `"served"` {
		t.Fatalf("message %+v", m)
	}

	for i, s := range silent {
		if got := s.closed(); got != int(protocol.CloseAuthTimeout) {
			t.Fatalf("silent connection %d closed with %d, want %d", i, got, protocol.CloseAuthTimeout)
		}
	}
	for err := range stalled {
		if err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("stalled handshakes closed after %s; the header timeout is %s (the default 5s must not apply)", took, headerTimeout)
	}
	if p := c.call(protocol.Request{Type: protocol.TypePing}); p.Error != nil {
		t.Fatalf("the well-behaved client after the stalled ones: %v", p.Error)
	}
}

// slowLoris opens n TCP connections that each send the start of an
// upgrade request and nothing more. The channel yields, once per
// connection, nil when the server closed it, or what went wrong.
func slowLoris(t *testing.T, r *replica, n int) <-chan error {
	t.Helper()
	host := r.http[len("http://"):]
	partial := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upg"
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write([]byte(partial)); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs <- closedByServer(conn) })
	}
	go func() { wg.Wait(); close(errs) }()
	return errs
}

// closedByServer waits for the server to end conn without answering.
func closedByServer(conn net.Conn) error {
	conn.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(conn).ReadString('\n')
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("a stalled handshake is still open")
	case err == nil:
		return errors.New("a stalled handshake was answered: " + strings.TrimSpace(line))
	}
	return nil
}
