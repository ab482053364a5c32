package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/gateway"
)

// sseClient reads the fallback's event stream.
type sseClient struct {
	t      *testing.T
	r      *replica
	events chan sseEvent
	conn   string
	cancel context.CancelFunc
}

type sseEvent struct {
	name string
	data string
}

func dialSSE(t *testing.T, r *replica, token string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.http+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("stream answer %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, r: r, events: make(chan sseEvent, 1024), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.events)
		defer resp.Body.Close()
		c.read(bufio.NewReader(resp.Body))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *sseClient) read(br *bufio.Reader) {
	ev := sseEvent{name: "message"}
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				c.events <- ev
			}
			ev, data = sseEvent{name: "message"}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
}

// frame waits for a frame event that matches, dropping the frames before
// it.
func (c *sseClient) frame(what string, match func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	f, _ := c.until(what, match)
	return f
}

// until waits for a frame event that matches and returns it with the
// frames that came before it, in order.
func (c *sseClient) until(what string, match func(protocol.Frame) bool) (protocol.Frame, []protocol.Frame) {
	c.t.Helper()
	var before []protocol.Frame
	timeout := time.After(wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatalf("stream ended waiting for %s", what)
			}
			var f protocol.Frame
			if ev.name != "message" || json.Unmarshal([]byte(ev.data), &f) != nil {
				continue
			}
			if match(f) {
				return f, before
			}
			before = append(before, f)
		case <-timeout:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// connected waits for the connected push and keeps the connection id for
// the posts.
func (c *sseClient) connected() protocol.AuthResult {
	c.t.Helper()
	f := c.frame("connected", func(f protocol.Frame) bool { return f.Type == protocol.TypeConnected })
	var res protocol.AuthResult
	if err := json.Unmarshal(f.Result, &res); err != nil {
		c.t.Fatal(err)
	}
	c.conn = res.Connection
	return res
}

// closed waits for the close event and returns its code.
func (c *sseClient) closed() int {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatal("stream ended without a close event")
			}
			if ev.name == "close" {
				var body struct{ Code int }
				json.Unmarshal([]byte(ev.data), &body)
				return body.Code
			}
		case <-timeout:
			c.t.Fatal("timed out waiting for the close event")
		}
	}
}

// post sends one request and returns the HTTP status.
func (c *sseClient) post(token string, req protocol.Request) int {
	c.t.Helper()
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, c.r.http+"/sse/"+c.conn, strings.NewReader(string(b)))
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postOK sends one request and fails the test unless it is accepted.
func (c *sseClient) postOK(token string, req protocol.Request) {
	c.t.Helper()
	if st := c.post(token, req); st != http.StatusAccepted {
		c.t.Fatalf("post %s: %d, want 202", req.Type, st)
	}
}

func isMessage(f protocol.Frame) bool { return f.Type == protocol.TypeMessage }

// The event-stream fallback carries the same frames and close codes as a
// WebSocket.
func TestSSE(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	a.Grant("alice", "c1")
	tok := a.Issue("alice", "s1", time.Hour)
	c := dialSSE(t, r, tok)
	if res := c.connected(); res.User != "alice" || res.Connection == "" {
		t.Fatalf("connected %+v", res)
	}

	if st := c.post(tok, protocol.Request{ID: 1, Type: protocol.TypeJoin, Room: "conversation:c1"}); st != http.StatusAccepted {
		t.Fatalf("post join: %d", st)
	}
	if f := c.frame("join reply", func(f protocol.Frame) bool { return f.ID == 1 }); f.Error != nil {
		t.Fatalf("join: %v", f.Error)
	}
	publishHTTP(t, r, "conversation:c1", "{\n  \"multi\": \"line\"\n}")
	m := c.frame("message", func(f protocol.Frame) bool { return f.Type == protocol.TypeMessage })
	if m.Room != "conversation:c1" || !strings.Contains(string(m.Data), `"multi"`) {
		t.Fatalf("message %+v", m)
	}

	t.Run("refused posts", func(t *testing.T) {
		if st := c.post(a.Issue("mallory", "s9", time.Hour), protocol.Request{ID: 2, Type: protocol.TypePing}); st != http.StatusUnauthorized {
			t.Fatalf("another user's token: %d, want 401", st)
		}
		other := *c
		other.conn = "nope"
		if st := other.post(tok, protocol.Request{ID: 3, Type: protocol.TypePing}); st != http.StatusNotFound {
			t.Fatalf("unknown connection: %d, want 404", st)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		if code := dialSSE(t, r, "garbage").closed(); code != int(protocol.CloseBadToken) {
			t.Fatalf("close code %d, want %d", code, protocol.CloseBadToken)
		}
	})
	t.Run("drain", func(t *testing.T) {
		go r.stop()
		if code := c.closed(); code != int(protocol.CloseRestarting) {
			t.Fatalf("close code %d, want %d", code, protocol.CloseRestarting)
		}
	})
}

// The fallback follows the WebSocket's origin rule, and answers the
// preflight of an allowed origin.
func TestSSEOrigin(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.AllowedOrigins = []string{"app.example.com"} })
	tests := []struct {
		method, path, origin string
		want                 int
	}{
		{http.MethodOptions, "/sse", "https://app.example.com", http.StatusNoContent},
		{http.MethodOptions, "/sse/abc", "https://app.example.com", http.StatusNoContent},
		{http.MethodOptions, "/sse", "https://evil.example.com", http.StatusForbidden},
		{http.MethodGet, "/sse", "https://evil.example.com", http.StatusForbidden},
		{http.MethodPost, "/sse/abc", "https://evil.example.com", http.StatusForbidden},
		{http.MethodGet, "/sse", "https://app.example.com", http.StatusUnauthorized}, // allowed, but no token
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.origin, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, r.http+tt.path, nil)
			req.Header.Set("Origin", tt.origin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			allow := resp.Header.Get("Access-Control-Allow-Origin")
			if (tt.want != http.StatusForbidden) != (allow == tt.origin) {
				t.Fatalf("Access-Control-Allow-Origin %q", allow)
			}
		})
	}
	c := dialSSE(t, r, a.Issue("alice", "s1", time.Hour))
	c.connected()
	publishHTTP(t, r, "user:alice", `"still served"`)
	if m := c.frame("message", isMessage); string(m.Data) != `"still served"` {
		t.Fatalf("well-behaved stream after the refusals got %+v", m)
	}
}

// Without a sticky load balancer a request may reach another replica: it is
// forwarded, through Redis, to the replica that holds the stream.
func TestSSEForwarding(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r1 := startReplica(t, a, rs.URL(), nil)
	r2 := startReplica(t, a, rs.URL(), nil)
	a.Grant("alice", "c1")
	tok := a.Issue("alice", "s1", time.Hour)
	c := dialSSE(t, r1, tok)
	c.connected()

	elsewhere := *c
	elsewhere.r = r2
	if st := elsewhere.post(tok, protocol.Request{ID: 1, Type: protocol.TypeJoin, Room: "conversation:c1"}); st != http.StatusAccepted {
		t.Fatalf("post on the other replica: %d, want 202", st)
	}
	if f := c.frame("join reply", func(f protocol.Frame) bool { return f.ID == 1 }); f.Error != nil {
		t.Fatalf("join: %v", f.Error)
	}
	if st := elsewhere.post(a.Issue("mallory", "s2", time.Hour), protocol.Request{ID: 2, Type: protocol.TypeLeave, Room: "conversation:c1"}); st != http.StatusAccepted {
		t.Fatalf("forwarded post with another user's token: %d (the holder drops it)", st)
	}
	publishHTTP(t, r2, "conversation:c1", `"still a member"`)
	if m := c.frame("message", func(f protocol.Frame) bool { return f.Type == protocol.TypeMessage }); string(m.Data) != `"still a member"` {
		t.Fatalf("message %+v", m)
	}
	gone := *c
	gone.r, gone.conn = r2, "0000-1"
	if st := gone.post(tok, protocol.Request{ID: 3, Type: protocol.TypePing}); st != http.StatusNotFound {
		t.Fatalf("post for a replica that does not exist: %d, want 404", st)
	}
}

// A flood of posted requests gets what a WebSocket flood gets:
// rate_limited errors down the stream, then close 3505. Each post is
// accepted (202), refused while too many wait (429), or refused once the
// connection has ended (404).
func TestSSERateLimit(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.Rate, c.Conn.Burst = 1, 3 })
	tok := a.Issue("alice", "s1", time.Hour)
	c := dialSSE(t, r, tok)
	c.connected()
	for id := range uint64(20) {
		switch st := c.post(tok, protocol.Request{ID: id + 1, Type: protocol.TypePing}); st {
		case http.StatusAccepted, http.StatusTooManyRequests, http.StatusNotFound:
		default:
			t.Fatalf("post %d answered %d", id+1, st)
		}
	}
	if f := c.frame("an error", func(f protocol.Frame) bool { return f.Error != nil }); f.Error.Code != protocol.ErrRateLimited {
		t.Fatalf("error %v, want rate_limited", f.Error)
	}
	if code := c.closed(); code != int(protocol.CloseRateLimited) {
		t.Fatalf("close code %d, want %d", code, protocol.CloseRateLimited)
	}
	if n := metric(t, r, `switchboard_gateway_closes_total{code="3505"}`); n != 1 {
		t.Fatalf("closes with 3505 counted %v, want 1", n)
	}
}

// A fallback client whose replica stops comes back on another one, joins
// with the last position it saw, and receives what it missed in order
// before the reply, then live messages: the recovery of a WebSocket.
func TestSSEJoinSince(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r1 := startReplica(t, a, rs.URL(), nil)
	r2 := startReplica(t, a, rs.URL(), nil)
	a.Grant("alice", "c1")
	tok := a.Issue("alice", "s1", time.Hour)
	const room = "conversation:c1"

	c := dialSSE(t, r1, tok)
	c.connected()
	c.postOK(tok, protocol.Request{ID: 1, Type: protocol.TypeJoin, Room: room})
	c.frame("join reply", func(f protocol.Frame) bool { return f.ID == 1 })
	publishHTTP(t, r2, room, `"seen"`)
	seen := c.frame("message", isMessage)
	go r1.stop()
	if code := c.closed(); code != int(protocol.CloseRestarting) {
		t.Fatalf("close code %d, want %d", code, protocol.CloseRestarting)
	}
	for i := range 3 {
		publishHTTP(t, r2, room, fmt.Sprint(i))
	}

	back := dialSSE(t, r2, tok)
	back.connected()
	since := protocol.Position{Epoch: seen.Epoch, Offset: seen.Offset}
	back.postOK(tok, protocol.Request{ID: 1, Type: protocol.TypeJoin, Room: room, Since: &since})
	reply, before := back.until("join reply", func(f protocol.Frame) bool { return f.ID == 1 })
	var res protocol.JoinResult
	if reply.Error != nil || json.Unmarshal(reply.Result, &res) != nil || res.Recovered == nil || !*res.Recovered {
		t.Fatalf("join with a kept position answered %+v", reply)
	}
	want := seen.Offset + 1
	for _, m := range before {
		if isMessage(m) && m.Room == room {
			if m.Offset != want || m.Epoch != seen.Epoch {
				t.Fatalf("replayed offset %d of %s, want %d of %s", m.Offset, m.Epoch, want, seen.Epoch)
			}
			want++
		}
	}
	if want != seen.Offset+4 {
		t.Fatalf("replayed %d messages before the reply, want 3", want-seen.Offset-1)
	}
	publishHTTP(t, r2, room, `"live"`)
	if m := back.frame("message", isMessage); m.Offset != want || string(m.Data) != `"live"` {
		t.Fatalf("live message %s at %d, want at %d", m.Data, m.Offset, want)
	}
	if n := metric(t, r2, `switchboard_gateway_recoveries_total{result="recovered"}`); n != 1 {
		t.Fatalf("recoveries counted %v, want 1", n)
	}
}

// Fallback connections and their frames count in the gateway's series as
// WebSocket ones do, and in a gauge of their own.
func TestSSEMetrics(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	a.Grant("alice", "c1")
	tok := a.Issue("alice", "s1", time.Hour)
	c := dialSSE(t, r, tok)
	c.connected()
	c.postOK(tok, protocol.Request{ID: 1, Type: protocol.TypeJoin, Room: "conversation:c1"})
	c.frame("join reply", func(f protocol.Frame) bool { return f.ID == 1 })
	c.postOK(tok, protocol.Request{ID: 2, Type: protocol.TypePublish, Room: "conversation:c1", Data: json.RawMessage(`"hi"`)})
	// The message may come down before or after the publish's reply.
	if _, before := c.until("publish reply", func(f protocol.Frame) bool { return f.ID == 2 }); !slices.ContainsFunc(before, isMessage) {
		c.frame("message", isMessage)
	}

	want := map[string]float64{
		"switchboard_gateway_connections":                                  1,
		"switchboard_gateway_fallback_connections":                         1,
		`switchboard_gateway_frames_in_total{type="join"}`:                 1,
		`switchboard_gateway_frames_in_total{type="publish"}`:              1,
		`switchboard_gateway_publishes_total{result="ok",source="client"}`: 1,
		"switchboard_gateway_deliveries_total":                             1,
		"switchboard_gateway_frames_out_total":                             4, // connected, two replies, the message
	}
	for series, n := range want {
		if got := metric(t, r, series); got != n {
			t.Errorf("%s = %v, want %v", series, got, n)
		}
	}
	c.cancel()
	poll(t, "the connection uncounted", func() bool {
		return metric(t, r, "switchboard_gateway_connections") == 0 &&
			metric(t, r, "switchboard_gateway_fallback_connections") == 0
	})
}
