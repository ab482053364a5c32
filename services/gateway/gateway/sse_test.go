package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
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

// frame waits for a frame event that matches.
func (c *sseClient) frame(what string, match func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatalf("stream ended waiting for %s", what)
			}
			var f protocol.Frame
			if ev.name == "message" && json.Unmarshal([]byte(ev.data), &f) == nil && match(f) {
				return f
			}
		case <-timeout:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
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

// The event-stream fallback carries the same frames and close codes as a
// WebSocket.
func TestSSE(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	a.Grant("alice", "c1")
	tok := a.Issue("alice", "s1", time.Hour)
	c := dialSSE(t, r, tok)
	f := c.frame("connected", func(f protocol.Frame) bool { return f.Type == protocol.TypeConnected })
	var res protocol.AuthResult
	json.Unmarshal(f.Result, &res)
	if res.User != "alice" || res.Connection == "" {
		t.Fatalf("connected %+v", res)
	}
	c.conn = res.Connection

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
	f := c.frame("connected", func(f protocol.Frame) bool { return f.Type == protocol.TypeConnected })
	var res protocol.AuthResult
	json.Unmarshal(f.Result, &res)
	c.conn = res.Connection

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
