package hub_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wants records what the hub asks of its broker.
type wants struct {
	broker.Memory
	mu    sync.Mutex
	calls []string // "+room" or "-room"
	fail  bool
}

func (w *wants) Want(rooms []string, want bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rooms {
		if want {
			w.calls = append(w.calls, "+"+r)
		} else {
			w.calls = append(w.calls, "-"+r)
		}
	}
}

func (w *wants) Ready(ctx context.Context, _ string) error {
	if w.fail {
		return errors.New("no subscription")
	}
	return ctx.Err()
}

// member records what it is sent.
type member struct {
	mu     sync.Mutex
	frames []string
}

func (m *member) Send(frame []byte, _ time.Time) {
	m.mu.Lock()
	m.frames = append(m.frames, string(frame))
	m.mu.Unlock()
}
func (m *member) AccessRevoked(string)     {}
func (m *member) SessionRevoked(string)    {}
func (m *member) Session() string          { return "" }
func (m *member) Close(protocol.CloseCode) {}

func newHub(opts hub.Options) (*hub.Hub, *wants) {
	h := hub.New(opts)
	w := &wants{}
	h.SetBroker(w)
	return h, w
}

// The broker is asked for a room when its first member joins and told to
// drop it when its last member leaves, once each.
func TestWantFollowsMembers(t *testing.T) {
	h, w := newHub(hub.Options{})
	ctx := context.Background()
	a, b := &member{}, &member{}
	steps := []func(){
		func() { h.Join(ctx, "conversation:1", a, false) },
		func() { h.Join(ctx, "conversation:1", b, false) },
		func() { h.Join(ctx, "conversation:1", a, false) }, // again: nothing new
		func() { h.Leave("conversation:1", a) },
		func() { h.Leave("conversation:1", a) }, // not a member: nothing
		func() { h.Leave("conversation:1", b) },
		func() { h.Join(ctx, "conversation:1", b, false) },
	}
	for _, step := range steps {
		step()
	}
	want := []string{"+conversation:1", "-conversation:1", "+conversation:1"}
	if !slices.Equal(w.calls, want) {
		t.Fatalf("broker calls %v, want %v", w.calls, want)
	}
	if n := h.Members("conversation:1"); n != 1 {
		t.Fatalf("%d members, want 1", n)
	}
}

func TestJoinFailsWithoutSubscription(t *testing.T) {
	h, w := newHub(hub.Options{})
	w.fail = true
	if err := h.Join(context.Background(), "conversation:1", &member{}, false); err == nil {
		t.Fatal("join succeeded without a subscription")
	}
	if n := h.Members("conversation:1"); n != 0 {
		t.Fatalf("%d members after a failed join", n)
	}
	if !slices.Equal(w.calls, []string{"+conversation:1", "-conversation:1"}) {
		t.Fatalf("broker calls %v", w.calls)
	}
}

func TestDeliver(t *testing.T) {
	h, _ := newHub(hub.Options{})
	ctx := context.Background()
	in, out := &member{}, &member{}
	h.Join(ctx, "conversation:1", in, false)
	h.Join(ctx, "conversation:2", out, false)
	h.Deliver(broker.Message{Room: "conversation:1", Data: []byte(`{"x":1}`), Epoch: "e", Offset: 3})
	want := `{"type":"message","room":"conversation:1","data":{"x":1},"epoch":"e","offset":3}`
	if len(in.frames) != 1 || in.frames[0] != want {
		t.Fatalf("member got %q, want %q", in.frames, want)
	}
	if len(out.frames) != 0 {
		t.Fatalf("a member of another room got %q", out.frames)
	}
}

func TestRegisterLimits(t *testing.T) {
	tests := []struct {
		name    string
		opts    hub.Options
		users   []string
		wantErr []error
	}{
		{"per user", hub.Options{MaxPerUser: 2}, []string{"a", "a", "a", "b"},
			[]error{nil, nil, hub.ErrTooManyForUser, nil}},
		{"per node", hub.Options{MaxConnections: 2}, []string{"a", "b", "c"},
			[]error{nil, nil, hub.ErrNodeFull}},
		{"none", hub.Options{}, []string{"a", "a", "a"}, []error{nil, nil, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(tt.opts)
			for i, u := range tt.users {
				if err := h.Register(u, &member{}); !errors.Is(err, tt.wantErr[i]) {
					t.Fatalf("connection %d of %s: %v, want %v", i, u, err, tt.wantErr[i])
				}
			}
		})
	}
	t.Run("unregister frees a place", func(t *testing.T) {
		h, _ := newHub(hub.Options{MaxPerUser: 1})
		m := &member{}
		h.Register("a", m)
		h.Unregister("a", m)
		if err := h.Register("a", &member{}); err != nil {
			t.Fatal(err)
		}
		if n := h.Connections(); n != 1 {
			t.Fatalf("%d connections, want 1", n)
		}
	})
}
