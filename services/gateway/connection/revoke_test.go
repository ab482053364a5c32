package connection_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/connection"
	"switchboard/services/gateway/hub"
	"switchboard/services/gateway/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// transport is a Transport the test drives: in carries the client's
// frames, out receives what the connection writes.
type transport struct {
	in     chan string
	out    chan protocol.Frame
	closed chan struct{}
}

func newTransport() *transport {
	return &transport{in: make(chan string), out: make(chan protocol.Frame, 64), closed: make(chan struct{})}
}

func (t *transport) ReadMessage(int64) (bool, []byte, error) {
	select {
	case s, ok := <-t.in:
		if !ok {
			return false, nil, io.EOF
		}
		return true, []byte(s), nil
	case <-t.closed:
		return false, nil, io.EOF
	}
}

func (t *transport) Buffered() int { return 0 }

func (t *transport) Park(resume func()) { go resume() }

func (t *transport) Drain() {}

func (t *transport) WriteText(p []byte) error {
	var f protocol.Frame
	if err := json.Unmarshal(p, &f); err != nil {
		return err
	}
	select {
	case t.out <- f:
		return nil
	case <-t.closed:
		return io.ErrClosedPipe
	}
}

func (t *transport) Ping(context.Context) error { return nil }

func (t *transport) Close(uint16, string) error { return t.CloseNow() }

func (t *transport) CloseNow() error {
	select {
	case <-t.closed:
	default:
		close(t.closed)
	}
	return nil
}

// gate holds a call until the test opens it, telling the test once the
// call is waiting.
type gate struct {
	waiting chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{waiting: make(chan struct{}), open: make(chan struct{})} }

// pass waits for the test to open the gate; a nil gate lets every call by.
func (g *gate) pass(ctx context.Context) error {
	if g == nil {
		return nil
	}
	close(g.waiting)
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// auth allows alice into every conversation; Authorize waits at its gate.
type auth struct{ gate *gate }

func (a *auth) Validate(context.Context, string) (authn.Identity, error) {
	return authn.Identity{User: "alice", Session: "s1", Expires: time.Now().Add(time.Hour)}, nil
}

func (a *auth) Authorize(ctx context.Context, user, _ string) (bool, error) {
	if err := a.gate.pass(ctx); err != nil {
		return false, err
	}
	return user == "alice", nil
}

func (a *auth) Conversations(context.Context, string) ([]string, error) { return nil, nil }

// gatedBroker is the in-process broker whose Ready for a conversation
// room waits at its gate.
type gatedBroker struct {
	*broker.Memory
	gate *gate
}

func (b *gatedBroker) Ready(ctx context.Context, room string) error {
	if strings.HasPrefix(room, protocol.ConversationPrefix) {
		if err := b.gate.pass(ctx); err != nil {
			return err
		}
	}
	return b.Memory.Ready(ctx, room)
}

// next returns the next frame the connection writes.
func next(t *testing.T, tr *transport) protocol.Frame {
	t.Helper()
	select {
	case f := <-tr.out:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame from the connection")
		return protocol.Frame{}
	}
}

// A revocation of a conversation that arrives while a join of it is in
// flight (after auth allowed it, before the connection is a member) wins:
// the join is answered forbidden, with a left push first when the hub had
// made the connection a member already, and the connection is not left in
// the room.
func TestRevocationDuringJoin(t *testing.T) {
	const room = protocol.ConversationPrefix + "c1"
	tests := []struct {
		name     string
		auth     *gate // holds Authorize
		ready    *gate // holds the hub join's wait for the subscription
		wantLeft bool
	}{
		{name: "after auth allowed the join", auth: newGate()},
		{name: "while the hub joins", ready: newGate(), wantLeft: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hub.New(hub.Options{})
			defer h.Close()
			mem := broker.NewMemory(h.Deliver, broker.HistoryOptions{})
			defer mem.Close()
			h.SetBroker(&gatedBroker{Memory: mem, gate: tt.ready})

			tr := newTransport()
			c := connection.New(tr, new(connection.Config{}.WithDefaults()), &connection.Deps{
				Hub: h, Broker: mem, Auth: &auth{gate: tt.auth}, Metrics: telemetry.Discard(),
				Logger: slog.New(slog.DiscardHandler),
			})
			done := make(chan struct{})
			go func() { c.Serve("token"); close(done) }()
			defer func() { tr.CloseNow(); <-done }()
			if f := next(t, tr); f.Type != protocol.TypeConnected {
				t.Fatalf("first frame %+v, want connected", f)
			}

			tr.in <- `{"id":1,"type":"join","room":"` + room + `"}`
			held := tt.auth
			if held == nil {
				held = tt.ready
			}
			<-held.waiting
			h.RevokeAccess("alice", room)
			close(held.open)

			f := next(t, tr)
			if tt.wantLeft {
				if f.Type != protocol.TypeLeft || f.Room != room || f.Reason != protocol.ReasonAccessRevoked {
					t.Fatalf("frame %+v, want left %s access_revoked", f, room)
				}
				f = next(t, tr)
			}
			if f.Type != protocol.TypeReply || f.ID != 1 || f.Error == nil || f.Error.Code != protocol.ErrForbidden {
				t.Fatalf("join answered %+v (error %+v), want forbidden", f, f.Error)
			}
			if n := h.Members(room); n != 0 {
				t.Fatalf("%d members of %s after the revocation, want 0", n, room)
			}

			// The connection is no member: it may not publish there, and
			// what is published there does not reach it.
			if _, _, err := mem.Publish(context.Background(), room, []byte(`"secret"`), ""); err != nil {
				t.Fatal(err)
			}
			tr.in <- `{"id":2,"type":"publish","room":"` + room + `","data":"x"}`
			f = next(t, tr)
			if f.Type != protocol.TypeReply || f.ID != 2 || f.Error == nil || f.Error.Code != protocol.ErrNotMember {
				t.Fatalf("publish answered %+v (error %+v), want not_member", f, f.Error)
			}
		})
	}
}

// A revocation after the join has completed takes the connection out of
// the room with a left push, as before.
func TestRevocationAfterJoin(t *testing.T) {
	const room = protocol.ConversationPrefix + "c1"
	h := hub.New(hub.Options{})
	defer h.Close()
	mem := broker.NewMemory(h.Deliver, broker.HistoryOptions{})
	defer mem.Close()
	h.SetBroker(mem)

	tr := newTransport()
	c := connection.New(tr, new(connection.Config{}.WithDefaults()), &connection.Deps{
		Hub: h, Broker: mem, Auth: &auth{}, Metrics: telemetry.Discard(),
		Logger: slog.New(slog.DiscardHandler),
	})
	done := make(chan struct{})
	go func() { c.Serve("token"); close(done) }()
	defer func() { tr.CloseNow(); <-done }()
	next(t, tr) // connected

	tr.in <- `{"id":1,"type":"join","room":"` + room + `"}`
	if f := next(t, tr); f.Type != protocol.TypeReply || f.Error != nil {
		t.Fatalf("join answered %+v, want a result", f)
	}
	h.RevokeAccess("alice", room)
	if f := next(t, tr); f.Type != protocol.TypeLeft || f.Room != room || f.Reason != protocol.ReasonAccessRevoked {
		t.Fatalf("frame %+v, want left %s access_revoked", f, room)
	}
	if n := h.Members(room); n != 0 {
		t.Fatalf("%d members of %s after the revocation, want 0", n, room)
	}
}
