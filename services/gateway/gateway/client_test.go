package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/libs/gatewayclient"
	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/gateway"
	"switchboard/services/gateway/internal/fakeauth"
)

// proxy forwards TCP to a replica and can cut every connection, as a
// network failure would.
type proxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{lis: listen(t), target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.lis.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "ws://" + p.lis.Addr().String() + "/ws" }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// tokens issues a fresh token for one user's session on every call.
type tokens struct {
	a       *fakeauth.Auth
	user    string
	session string
	ttl     time.Duration
}

func (s tokens) Token(context.Context) (string, error) {
	return s.a.Issue(s.user, s.session, s.ttl), nil
}

// recorder collects what a client's handlers see.
type recorder struct {
	mu       sync.Mutex
	messages []gatewayclient.Message
	events   []gatewayclient.Event
}

func (r *recorder) onMessage(m gatewayclient.Message) {
	r.mu.Lock()
	r.messages = append(r.messages, m)
	r.mu.Unlock()
}

func (r *recorder) onEvent(e gatewayclient.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) hasMessage(data string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.messages {
		if string(m.Data) == data {
			return true
		}
	}
	return false
}

// data returns the data of room's messages in arrival order.
func (r *recorder) data(room string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.messages {
		if m.Room == room {
			out = append(out, string(m.Data))
		}
	}
	return out
}

func (r *recorder) count(match func(gatewayclient.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if match(e) {
			n++
		}
	}
	return n
}

func connectedEvents(e gatewayclient.Event) bool { return e.State == gatewayclient.StateConnected }

// runClient runs a Go client until cleanup and returns it with its
// recorder and the channel Run's error arrives on.
func runClient(t *testing.T, url string, src gatewayclient.TokenSource, mod func(*gatewayclient.Options)) (*gatewayclient.Client, *recorder, chan error) {
	t.Helper()
	rec := &recorder{}
	opts := gatewayclient.Options{
		URL: url, Tokens: src, OnMessage: rec.onMessage, OnEvent: rec.onEvent,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	c := gatewayclient.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c, rec, done
}

// The Go client reconnects after a network failure, rejoins its rooms and
// measures latency.
func TestClientReconnectsAndRejoins(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	a.Grant("alice", "c1")
	p := startProxy(t, r.http[len("http://"):])
	c, rec, _ := runClient(t, p.url(), tokens{a, "alice", "s1", time.Hour}, nil)

	poll(t, "connected", func() bool { return c.State() == gatewayclient.StateConnected })
	ctx := context.Background()
	if err := c.Join(ctx, "conversation:c1"); err != nil {
		t.Fatal(err)
	}
	publishHTTP(t, r, "conversation:c1", `"before"`)
	poll(t, "the first message", func() bool { return rec.hasMessage(`"before"`) })
	if pos, ok := c.Position("conversation:c1"); !ok || pos.Offset != 1 || pos.Epoch == "" {
		t.Fatalf("position after the first message: %+v %v", pos, ok)
	}
	if d, q := c.Latency(); d <= 0 || q == gatewayclient.QualityUnknown {
		t.Fatalf("latency %s quality %s after connecting", d, q)
	}

	publishHTTP(t, r, "user:alice", `"to alice"`)
	poll(t, "the user room's message", func() bool { return rec.hasMessage(`"to alice"`) })

	// Messages published around the cut arrive once each, in order, by
	// recovery or live, and the recovery of both rooms is reported.
	p.cut()
	for _, d := range []string{`"cut 1"`, `"cut 2"`, `"cut 3"`} {
		publishHTTP(t, r, "conversation:c1", d)
	}
	publishHTTP(t, r, "user:alice", `"to alice, cut"`)
	poll(t, "a second connection", func() bool { return rec.count(connectedEvents) == 2 })
	poll(t, "both rooms recovered", func() bool {
		return rec.count(func(e gatewayclient.Event) bool {
			return e.Recovery["conversation:c1"] && e.Recovery["user:alice"]
		}) == 1
	})
	poll(t, "the room rejoined", func() bool { return r.g.Hub().Members("conversation:c1") == 1 })
	publishHTTP(t, r, "conversation:c1", `"after"`)
	poll(t, "a message after the reconnect", func() bool { return rec.hasMessage(`"after"`) })
	want := []string{`"before"`, `"cut 1"`, `"cut 2"`, `"cut 3"`, `"after"`}
	if got := rec.data("conversation:c1"); !slices.Equal(got, want) {
		t.Fatalf("room messages %v, want %v", got, want)
	}
	if got := rec.data("user:alice"); len(got) != 2 {
		t.Fatalf("user room messages %v, want 2", got)
	}

	pos, err := c.PublishIdempotent(ctx, "conversation:c1", json.RawMessage(`"mine"`), "k")
	if err != nil || pos.Offset != 6 {
		t.Fatalf("publish: %+v %v, want offset 6", pos, err)
	}
	if again, err := c.PublishIdempotent(ctx, "conversation:c1", json.RawMessage(`"mine"`), "k"); err != nil || again != pos {
		t.Fatalf("repeated publish: %+v %v, want %+v", again, err, pos)
	}
	if ids, err := c.Conversations(ctx); err != nil || len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("conversations: %v %v, want [c1]", ids, err)
	}
	var se *protocol.Error
	if err := c.Join(ctx, "conversation:secret"); !errors.As(err, &se) || se.Code != protocol.ErrForbidden {
		t.Fatalf("forbidden join: %v", err)
	}
}

// The client refreshes its token in-band before it expires, and stays on
// the same connection.
func TestClientRefreshesToken(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.ExpiryGrace = 50 * time.Millisecond })
	c, rec, _ := runClient(t, r.ws, tokens{a, "alice", "s1", 1500 * time.Millisecond},
		func(o *gatewayclient.Options) { o.RefreshMargin = time.Second })
	poll(t, "connected", func() bool { return c.State() == gatewayclient.StateConnected })
	refreshed := func(e gatewayclient.Event) bool { return e.Refreshed }
	poll(t, "three refreshes", func() bool { return rec.count(refreshed) >= 3 })
	if n := rec.count(connectedEvents); n != 1 {
		t.Fatalf("%d connections, want 1: the refresh must keep the connection", n)
	}
}

// A "do not reconnect" close ends Run with the code.
func TestClientStopsOnRevokedSession(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	c, _, done := runClient(t, r.ws, tokens{a, "alice", "s1", time.Hour}, nil)
	poll(t, "connected", func() bool { return c.State() == gatewayclient.StateConnected })
	a.DropSession("alice", "s1")
	select {
	case err := <-done:
		var ce *gatewayclient.CloseError
		if !errors.As(err, &ce) || ce.Code != int(protocol.CloseSessionRevoked) {
			t.Fatalf("Run returned %v, want close code %d", err, protocol.CloseSessionRevoked)
		}
		done <- err // for the cleanup
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
}
