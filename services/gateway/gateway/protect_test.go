package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/gateway"
	"switchboard/services/gateway/internal/fakeauth"
)

// Bad frames get their documented answer and the replica stays healthy.
func TestBadFrames(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.MaxMessageBytes = 1024 })
	strict := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.Rate, c.Conn.Burst = 1, 3 })
	tests := []struct {
		name string
		send func(c *client)
		// either an error code on a still usable connection, or a close
		wantErr   protocol.ErrorCode
		wantClose protocol.CloseCode
		strict    bool // on the replica with a rate of 1 frame/s
	}{
		{name: "garbage", send: func(c *client) { c.sendRaw(websocket.MessageText, []byte("\x00garbage{")) },
			wantErr: protocol.ErrBadRequest},
		{name: "malformed json", send: func(c *client) { c.sendRaw(websocket.MessageText, []byte(`{"type":"ping",`)) },
			wantErr: protocol.ErrBadRequest},
		{name: "unknown type", send: func(c *client) { c.send(protocol.Request{Type: "dance"}) },
			wantErr: protocol.ErrUnknownType},
		{name: "no id", send: func(c *client) { c.sendRaw(websocket.MessageText, []byte(`{"type":"ping"}`)) },
			wantErr: protocol.ErrBadRequest},
		{name: "malformed room", send: func(c *client) { c.send(protocol.Request{Type: protocol.TypeJoin, Room: "lobby"}) },
			wantErr: protocol.ErrBadRequest},
		{name: "join another user's room", send: func(c *client) { c.send(protocol.Request{Type: protocol.TypeJoin, Room: "user:bob"}) },
			wantErr: protocol.ErrForbidden},
		{name: "publish to a room not joined", send: func(c *client) {
			c.send(protocol.Request{Type: protocol.TypePublish, Room: "conversation:x", Data: json.RawMessage(`1`)})
		}, wantErr: protocol.ErrNotMember},
		{name: "oversized", send: func(c *client) {
			c.sendRaw(websocket.MessageText, []byte(`{"id":1,"type":"ping","ts":"`+strings.Repeat("x", 2000)+`"}`))
		}, wantClose: protocol.CloseMessageTooBig},
		{name: "binary", send: func(c *client) { c.sendRaw(websocket.MessageBinary, []byte{1, 2}) },
			wantClose: protocol.CloseBadRequest},
		{name: "flood", send: func(c *client) {
			// the server closes part way through: later writes may fail
			b, _ := json.Marshal(protocol.Request{ID: 1, Type: protocol.TypePing})
			for range 20 {
				if c.ws.Write(context.Background(), websocket.MessageText, b) != nil {
					return
				}
			}
		}, wantClose: protocol.CloseRateLimited, strict: true},
		{name: "ping flood", send: func(c *client) {
			// control frames count against the rate too, though they
			// get no error: only the close tells
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			var wg sync.WaitGroup
			for range 200 {
				wg.Go(func() { c.ws.Ping(ctx) })
			}
			wg.Wait()
		}, wantClose: protocol.CloseRateLimited, strict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			on := r
			if tt.strict {
				on = strict
			}
			c := dial(t, on, a.Issue("alice", "s-"+tt.name, time.Hour))
			c.connected()
			tt.send(c)
			if tt.wantClose != 0 {
				if got := c.closed(); got != int(tt.wantClose) {
					t.Fatalf("close code %d, want %d", got, tt.wantClose)
				}
				return
			}
			f := c.expect("an error", func(f protocol.Frame) bool { return f.Error != nil })
			if f.Error.Code != tt.wantErr {
				t.Fatalf("error %v, want %s", f.Error, tt.wantErr)
			}
			if p := c.call(protocol.Request{Type: protocol.TypePing, TS: json.RawMessage(`1`)}); p.Error != nil {
				t.Fatalf("ping after %s: %v", tt.name, p.Error)
			}
		})
	}
	t.Run("rate limited frames get an error first", func(t *testing.T) {
		c := dial(t, strict, a.Issue("alice", "s-rate", time.Hour))
		c.connected()
		for range 5 {
			c.send(protocol.Request{Type: protocol.TypePing})
		}
		f := c.expect("rate_limited", func(f protocol.Frame) bool { return f.Error != nil })
		if f.Error.Code != protocol.ErrRateLimited {
			t.Fatalf("got %v, want rate_limited", f.Error)
		}
	})
	for _, on := range []*replica{r, strict} {
		servedAfterAbuse(t, a, on)
	}
}

// servedAfterAbuse checks that a replica is still ready and serves a
// well-behaved client: it connects, and gets a message published to it.
func servedAfterAbuse(t *testing.T, a *fakeauth.Auth, r *replica) {
	t.Helper()
	resp, err := http.Get(r.http + "/readyz")
	if err != nil {
		t.Fatalf("replica unhealthy after the abuse: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("replica unhealthy after the abuse: %s", resp.Status)
	}
	c := dial(t, r, a.Issue("grace", "s-well-behaved", time.Hour))
	c.connected()
	publishHTTP(t, r, "user:grace", `"still served"`)
	if m := c.message("user:grace"); string(m.Data) != `"still served"` {
		t.Fatalf("well-behaved client got %+v", m)
	}
}

// A client that never reads is closed as a slow consumer; a member of the
// same room receives every message, in order.
func TestSlowConsumer(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.QueueBytes = 256 << 10 })
	a.Grant("slow", "busy")
	a.Grant("fast", "busy")

	fast := dial(t, r, a.Issue("fast", "s1", time.Hour))
	fast.connected()
	fast.join("conversation:busy")
	slow := dialWith(t, r, dialOpt{header: http.Header{"Authorization": {"Bearer " + a.Issue("slow", "s2", time.Hour)}}, noRead: true})
	// the slow client never reads, so it joins without reading the reply
	b, _ := json.Marshal(protocol.Request{ID: 1, Type: protocol.TypeJoin, Room: "conversation:busy"})
	slow.sendRaw(websocket.MessageText, b)
	poll(t, "both members in the room", func() bool { return r.g.Hub().Members("conversation:busy") == 2 })

	// Each message waits for the fast client before the next is sent: the
	// fast client keeps up while the slow one's queue fills.
	payload := `"` + strings.Repeat("x", 32<<10) + `"`
	sent := 0
	slowClosed := func() bool { return metric(t, r, `switchboard_gateway_closes_total{code="3002"}`) == 1 }
	for ; sent < 5000 && (sent%10 != 0 || !slowClosed()); sent++ {
		r.g.Hub().Deliver(broker.Message{
			Room: "conversation:busy", Data: []byte(fmt.Sprintf(`{"n":%d,"p":%s}`, sent, payload)),
			Epoch: "e", Offset: uint64(sent + 1), Published: time.Now(),
		})
		m := fast.message("conversation:busy")
		var body struct{ N int }
		if err := json.Unmarshal(m.Data, &body); err != nil || body.N != sent {
			t.Fatalf("fast client got message %d (%v), want %d", body.N, err, sent)
		}
	}
	t.Logf("slow consumer closed after %d messages", sent)
	if !slowClosed() {
		t.Fatalf("the slow consumer is still open after %d messages", sent)
	}
	poll(t, "the slow consumer leaves the room", func() bool { return r.g.Hub().Members("conversation:busy") == 1 })
}

// A peer that does not answer protocol pings is closed with the no-pong
// code. The client never reads, so it never answers pings.
func TestNoPong(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) {
		c.Conn.PingInterval, c.Conn.PingTimeout = 50*time.Millisecond, 50*time.Millisecond
	})
	dialWith(t, r, dialOpt{header: http.Header{"Authorization": {"Bearer " + a.Issue("alice", "s1", time.Hour)}}, noRead: true})
	poll(t, "the close for want of a pong", func() bool {
		return metric(t, r, `switchboard_gateway_closes_total{code="3004"}`) == 1
	})
	reader := dial(t, r, a.Issue("bob", "s2", time.Hour)) // answers pings while it reads
	reader.connected()
	time.Sleep(300 * time.Millisecond) // several ping periods
	if f := reader.call(protocol.Request{Type: protocol.TypePing}); f.Error != nil {
		t.Fatalf("a reading client was disturbed: %v", f.Error)
	}
}
