package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/gateway"
)

// The three ways to present a token, and what each failure closes with.
func TestAuthenticate(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) {
		c.Conn.AuthDeadline = 300 * time.Millisecond
		c.MaxPerUser = 2
	})

	t.Run("header", func(t *testing.T) {
		c := dial(t, r, a.Issue("alice", "s1", time.Hour))
		if res := c.connected(); res.User != "alice" || len(res.Rooms) != 1 || res.Rooms[0] != "user:alice" {
			t.Fatalf("connected %+v", res)
		}
	})
	t.Run("first frame", func(t *testing.T) {
		c := dial(t, r, "")
		f := c.call(protocol.Request{Type: protocol.TypeAuth, Token: a.Issue("bob", "s2", time.Hour)})
		var res protocol.AuthResult
		if f.Error != nil || json.Unmarshal(f.Result, &res) != nil || res.User != "bob" {
			t.Fatalf("auth reply %+v", f)
		}
		c.connected()
	})
	t.Run("legacy query parameter", func(t *testing.T) {
		c := dialWith(t, r, dialOpt{query: "?token=" + url.QueryEscape(a.Issue("carol", "s3", time.Hour))})
		if res := c.connected(); res.User != "carol" {
			t.Fatalf("connected %+v", res)
		}
	})

	closes := []struct {
		name string
		open func(t *testing.T) *client
		want protocol.CloseCode
	}{
		{"bad token", func(t *testing.T) *client { return dial(t, r, "not-a-token") }, protocol.CloseBadToken},
		{"bad token in first frame", func(t *testing.T) *client {
			c := dial(t, r, "")
			c.send(protocol.Request{Type: protocol.TypeAuth, Token: "nope"})
			return c
		}, protocol.CloseBadToken},
		{"expired token", func(t *testing.T) *client { return dial(t, r, a.Issue("dave", "s4", -time.Second)) }, protocol.CloseBadToken},
		{"first frame is not auth", func(t *testing.T) *client {
			c := dial(t, r, "")
			c.send(protocol.Request{Type: protocol.TypePing})
			return c
		}, protocol.CloseBadRequest},
		{"no token within the deadline", func(t *testing.T) *client { return dial(t, r, "") }, protocol.CloseAuthTimeout},
	}
	for _, tt := range closes {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.open(t).closed(); got != int(tt.want) {
				t.Fatalf("close code %d, want %d", got, tt.want)
			}
		})
	}

	t.Run("too many connections for one user", func(t *testing.T) {
		tok := a.Issue("erin", "s5", time.Hour)
		dial(t, r, tok).connected()
		dial(t, r, tok).connected()
		if got := dial(t, r, tok).closed(); got != int(protocol.CloseTooManyConnections) {
			t.Fatalf("third connection closed with %d", got)
		}
	})
	t.Run("auth unavailable", func(t *testing.T) {
		tok := a.Issue("frank", "s6", time.Hour)
		a.SetDown(true)
		defer a.SetDown(false)
		if got := dial(t, r, tok).closed(); got != int(protocol.CloseAuthUnavailable) {
			t.Fatalf("close code %d, want %d", got, protocol.CloseAuthUnavailable)
		}
	})
}

func TestNodeFull(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.MaxConnections = 1 })
	dial(t, r, a.Issue("alice", "s1", time.Hour)).connected()
	if got := dial(t, r, a.Issue("bob", "s2", time.Hour)).closed(); got != int(protocol.CloseNodeFull) {
		t.Fatalf("close code %d, want %d", got, protocol.CloseNodeFull)
	}
}

// Validations are cached while the revocation stream is up; a revoked
// session's token is refused at once.
func TestValidationCache(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	tok := a.Issue("alice", "s1", time.Hour)
	first := dial(t, r, tok)
	first.connected()
	before := a.Validations.Load()
	dial(t, r, tok).connected()
	if n := a.Validations.Load() - before; n != 0 {
		t.Fatalf("second connection called Validate %d times, want 0 (cached)", n)
	}
	a.DropSession("alice", "s1")
	if got := first.closed(); got != int(protocol.CloseSessionRevoked) { // the revocation arrived
		t.Fatalf("open connection: close code %d, want %d", got, protocol.CloseSessionRevoked)
	}
	if got := dial(t, r, tok).closed(); got != int(protocol.CloseBadToken) {
		t.Fatalf("revoked token: close code %d, want %d", got, protocol.CloseBadToken)
	}
}

func TestOrigin(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.AllowedOrigins = []string{"app.example.com"} })
	tests := []struct {
		origin string
		ok     bool
	}{
		{"https://app.example.com", true},
		{"https://evil.example.com", false},
		{"http://" + r.http[len("http://"):], true}, // same host
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			h := http.Header{"Origin": {tt.origin}, "Authorization": {"Bearer " + a.Issue("alice", "s", time.Hour)}}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, r.ws, &websocket.DialOptions{HTTPHeader: h})
			if ws != nil {
				ws.CloseNow()
			}
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
				t.Fatalf("want 403, got %v %v", resp, err)
			}
		})
	}
	servedAfterAbuse(t, a, r)
}

// A token that expires without a refresh closes the connection after the
// grace; a refresh for the same user keeps it; one for another user is
// refused.
func TestTokenExpiry(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.ExpiryGrace = 100 * time.Millisecond })

	t.Run("without refresh", func(t *testing.T) {
		c := dial(t, r, a.Issue("alice", "s1", 300*time.Millisecond))
		c.connected()
		if got := c.closed(); got != int(protocol.CloseTokenExpired) {
			t.Fatalf("close code %d, want %d", got, protocol.CloseTokenExpired)
		}
	})
	t.Run("with refresh", func(t *testing.T) {
		c := dial(t, r, a.Issue("bob", "s2", 300*time.Millisecond))
		c.connected()
		f := c.call(protocol.Request{Type: protocol.TypeRefresh, Token: a.Issue("bob", "s2", time.Hour)})
		var res protocol.RefreshResult
		if f.Error != nil || json.Unmarshal(f.Result, &res) != nil || time.UnixMilli(res.ExpiresAt).Before(time.Now().Add(30*time.Minute)) {
			t.Fatalf("refresh reply %+v", f)
		}
		time.Sleep(600 * time.Millisecond) // past the old expiry and its grace
		if p := c.call(protocol.Request{Type: protocol.TypePing, TS: json.RawMessage(`42`)}); p.Error != nil {
			t.Fatalf("ping after the old expiry: %v", p.Error)
		}
	})
	t.Run("refresh for another user", func(t *testing.T) {
		c := dial(t, r, a.Issue("carol", "s3", time.Hour))
		c.connected()
		f := c.call(protocol.Request{Type: protocol.TypeRefresh, Token: a.Issue("mallory", "s4", time.Hour)})
		if errCode(f) != protocol.ErrForbidden {
			t.Fatalf("got %+v, want forbidden", f)
		}
		f = c.call(protocol.Request{Type: protocol.TypeRefresh, Token: "garbage"})
		if errCode(f) != protocol.ErrBadToken {
			t.Fatalf("got %+v, want bad_token", f)
		}
	})
}

func TestPing(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	c := dial(t, r, a.Issue("alice", "s1", time.Hour))
	c.connected()
	f := c.call(protocol.Request{Type: protocol.TypePing, TS: json.RawMessage(`1733000000123`)})
	var res protocol.PingResult
	if f.Error != nil || json.Unmarshal(f.Result, &res) != nil || string(res.TS) != "1733000000123" || res.ServerTime == 0 {
		t.Fatalf("ping reply %+v", f)
	}
}

// permessage-deflate is negotiated when a threshold is set, and not when it
// is zero.
func TestCompression(t *testing.T) {
	a := startAuth(t)
	for _, threshold := range []int64{0, 1024} {
		t.Run(fmt.Sprint(threshold), func(t *testing.T) {
			r := startReplica(t, a, "", func(c *gateway.Config) { c.CompressionThreshold = threshold })
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, r.ws, &websocket.DialOptions{
				HTTPHeader:      http.Header{"Authorization": {"Bearer " + a.Issue("alice", "s1", time.Hour)}},
				CompressionMode: websocket.CompressionNoContextTakeover,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			got := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
			if got != (threshold > 0) {
				t.Fatalf("deflate negotiated: %v, want %v", got, threshold > 0)
			}
		})
	}
}
