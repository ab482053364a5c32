package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
	"switchboard/libs/server"
	gatewayv1 "switchboard/proto/switchboard/gateway/v1"
	"switchboard/services/gateway/gateway"
)

// Revocations reach every replica through auth's stream.
func TestRevocation(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r1 := startReplica(t, a, rs.URL(), nil)
	r2 := startReplica(t, a, rs.URL(), nil)
	a.Grant("alice", "c1")
	a.Grant("bob", "c1")

	t.Run("session", func(t *testing.T) {
		tok := a.Issue("alice", "s-revoked", time.Hour)
		on1, on2 := dial(t, r1, tok), dial(t, r2, tok)
		other := dial(t, r2, a.Issue("alice", "s-other", time.Hour))
		for _, c := range []*client{on1, on2, other} {
			c.connected()
		}
		a.DropSession("alice", "s-revoked")
		for i, c := range []*client{on1, on2} {
			if got := c.closed(); got != int(protocol.CloseSessionRevoked) {
				t.Fatalf("connection %d: close code %d, want %d", i, got, protocol.CloseSessionRevoked)
			}
		}
		if f := other.call(protocol.Request{Type: protocol.TypePing}); f.Error != nil {
			t.Fatalf("another session's connection: %v", f.Error)
		}
	})
	t.Run("access", func(t *testing.T) {
		alice := dial(t, r1, a.Issue("alice", "s1", time.Hour))
		bob := dial(t, r2, a.Issue("bob", "s2", time.Hour))
		alice.join("conversation:c1")
		bob.join("conversation:c1")
		a.DropAccess("alice", "c1")
		f := alice.expect("left", func(f protocol.Frame) bool { return f.Type == protocol.TypeLeft })
		if f.Room != "conversation:c1" || f.Reason != protocol.ReasonAccessRevoked {
			t.Fatalf("left push %+v", f)
		}
		publishHTTP(t, r2, "conversation:c1", `"after"`)
		bob.message("conversation:c1")
		publishHTTP(t, r2, "user:alice", `"sentinel"`)
		if m := alice.expect("a message", func(f protocol.Frame) bool { return f.Type == protocol.TypeMessage }); m.Room != "user:alice" {
			t.Fatalf("alice still got %+v", m)
		}
		if f := alice.call(protocol.Request{Type: protocol.TypeJoin, Room: "conversation:c1"}); errCode(f) != protocol.ErrForbidden {
			t.Fatalf("rejoin: %+v, want forbidden", f)
		}
	})
}

// On shutdown a replica reports not ready, closes its connections with the
// restarting code and returns.
func TestDrain(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Drain = 300 * time.Millisecond })
	clients := []*client{dial(t, r, a.Issue("alice", "s1", time.Hour)), dial(t, r, a.Issue("bob", "s2", time.Hour))}
	for _, c := range clients {
		c.connected()
	}
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	for i, c := range clients {
		if got := c.closed(); got != int(protocol.CloseRestarting) {
			t.Fatalf("client %d: close code %d, want %d", i, got, protocol.CloseRestarting)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
}

func TestDrainReportsNotReady(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Drain = 2 * time.Second })
	for range 3 {
		dial(t, r, a.Issue("alice", "s1", time.Hour)).connected()
	}
	go r.stop()
	poll(t, "readyz answers 503 while draining", func() bool {
		resp, err := http.Get(r.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	resp, err := http.Get(r.http + "/ws")
	if err != nil {
		t.Fatalf("new connection while draining: %v, want a 503 answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new connection while draining: %s, want 503", resp.Status)
	}
}

func TestPublishAPI(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	c := dial(t, r, a.Issue("alice", "s1", time.Hour))
	c.connected()

	t.Run("http", func(t *testing.T) {
		tests := []struct {
			name, cred, body string
			want             int
		}{
			{"ok", serviceCred, `{"room":"user:alice","data":{"a":1}}`, http.StatusOK},
			{"no credential", "", `{"room":"user:alice","data":1}`, http.StatusUnauthorized},
			{"wrong credential", "nope", `{"room":"user:alice","data":1}`, http.StatusUnauthorized},
			{"bad room", serviceCred, `{"room":"lobby","data":1}`, http.StatusBadRequest},
			{"no data", serviceCred, `{"room":"user:alice"}`, http.StatusBadRequest},
			{"not json", serviceCred, `room=user:alice`, http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, r.http+"/v1/publish", strings.NewReader(tt.body))
				if tt.cred != "" {
					req.Header.Set("Authorization", "Bearer "+tt.cred)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
				}
			})
		}
		if m := c.message("user:alice"); string(m.Data) != `{"a":1}` {
			t.Fatalf("message %+v", m)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		tests := []struct {
			name string
			cred string
			req  *gatewayv1.PublishRequest
			want codes.Code
		}{
			{"ok", serviceCred, &gatewayv1.PublishRequest{Room: "user:alice", Data: []byte(`"g"`)}, codes.OK},
			{"no credential", "", &gatewayv1.PublishRequest{Room: "user:alice", Data: []byte(`1`)}, codes.Unauthenticated},
			{"bad room", serviceCred, &gatewayv1.PublishRequest{Room: "x", Data: []byte(`1`)}, codes.InvalidArgument},
			{"not json", serviceCred, &gatewayv1.PublishRequest{Room: "user:alice", Data: []byte(`{`)}, codes.InvalidArgument},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
				if tt.cred != "" {
					opts = append(opts, server.WithCredential(tt.cred, false))
				}
				conn, err := grpc.NewClient(r.grpcAddr, opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				resp, err := gatewayv1.NewPublishServiceClient(conn).Publish(ctx, tt.req)
				if status.Code(err) != tt.want {
					t.Fatalf("code %v, want %v", status.Code(err), tt.want)
				}
				if err == nil && resp.GetOffset() == 0 {
					t.Fatalf("response %+v has no offset", resp)
				}
			})
		}
		if m := c.message("user:alice"); string(m.Data) != `"g"` {
			t.Fatalf("message %+v", m)
		}
	})
}

func TestTooManyRooms(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.Conn.MaxRooms = 2 })
	a.Grant("alice", "c1")
	a.Grant("alice", "c2")
	c := dial(t, r, a.Issue("alice", "s1", time.Hour))
	c.join("conversation:c1") // with user:alice, two rooms
	if f := c.call(protocol.Request{Type: protocol.TypeJoin, Room: "conversation:c2"}); errCode(f) != protocol.ErrTooManyRooms {
		t.Fatalf("got %+v, want too_many_rooms", f)
	}
	if f := c.call(protocol.Request{Type: protocol.TypeLeave, Room: "conversation:c1"}); f.Error != nil {
		t.Fatal(f.Error)
	}
	c.join("conversation:c2")
	f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:c2", Data: json.RawMessage(`"x"`)})
	if f.Error != nil {
		t.Fatal(f.Error)
	}
}
