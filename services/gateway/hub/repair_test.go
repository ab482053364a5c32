package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/hub"
)

// stored is a broker whose History serves a fixed log.
type stored struct {
	wants
	log []broker.Message
}

func (s *stored) History(_ context.Context, room, epoch string, after uint64) ([]broker.Message, error) {
	var out []broker.Message
	for _, m := range s.log {
		if m.Epoch == epoch && m.Offset > after {
			out = append(out, m)
		}
	}
	if len(out) == 0 || out[0].Offset != after+1 {
		return nil, broker.ErrNotRecoverable
	}
	return out, nil
}

func msg(epoch string, off uint64) broker.Message {
	return broker.Message{Room: "conversation:g", Epoch: epoch, Offset: off, Data: []byte(fmt.Sprint(off))}
}

// frames returns what m was sent as "epoch/offset" or "resync", once n
// frames arrived.
func (m *member) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		got := slices.Clone(m.frames)
		m.mu.Unlock()
		if len(got) >= n {
			out := make([]string, len(got))
			for i, s := range got {
				var f protocol.Frame
				json.Unmarshal([]byte(s), &f)
				out[i] = f.Type
				if f.Type == protocol.TypeMessage {
					out[i] = fmt.Sprintf("%s/%d", f.Epoch, f.Offset)
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d frames, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A replica that sees a gap in a room's live messages fills it from the
// room's history, in order, or tells the members to resync.
func TestRepair(t *testing.T) {
	tests := []struct {
		name    string
		log     []broker.Message
		deliver []broker.Message
		resub   bool // the subscription is re-established after the first
		want    []string
	}{
		{
			name:    "offset skipped, repaired; a late duplicate dropped",
			log:     []broker.Message{msg("a", 1), msg("a", 2), msg("a", 3), msg("a", 4), msg("a", 5)},
			deliver: []broker.Message{msg("a", 1), msg("a", 2), msg("a", 5), msg("a", 4), msg("a", 6)},
			want:    []string{"a/1", "a/2", "a/3", "a/4", "a/5", "a/6"},
		},
		{
			name:    "offset skipped beyond history: resync",
			log:     []broker.Message{msg("a", 5)},
			deliver: []broker.Message{msg("a", 1), msg("a", 5), msg("a", 6)},
			want:    []string{"a/1", "resync", "a/5", "a/6"},
		},
		{
			name:    "subscription re-established: what was missed is read",
			log:     []broker.Message{msg("a", 1), msg("a", 2), msg("a", 3)},
			deliver: []broker.Message{msg("a", 1), msg("a", 4)},
			resub:   true,
			want:    []string{"a/1", "a/2", "a/3", "a/4"},
		},
		{
			name:    "new epoch past its start: resync, then the epoch from its start",
			log:     []broker.Message{msg("b", 1), msg("b", 2), msg("b", 3)},
			deliver: []broker.Message{msg("a", 1), msg("b", 3), msg("b", 4)},
			want:    []string{"a/1", "resync", "b/1", "b/2", "b/3", "b/4"},
		},
		{
			name:    "new epoch whose start is gone: resync, then live",
			deliver: []broker.Message{msg("a", 1), msg("b", 3), msg("b", 4)},
			want:    []string{"a/1", "resync", "resync", "b/3", "b/4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hub.New(hub.Options{})
			t.Cleanup(h.Close)
			h.SetBroker(&stored{log: tt.log})
			m := &member{}
			if err := h.Join(context.Background(), "conversation:g", m, false); err != nil {
				t.Fatal(err)
			}
			for i, d := range tt.deliver {
				h.Deliver(d)
				if i == 0 && tt.resub {
					h.Resubscribed("conversation:g")
				}
			}
			got := m.wait(t, len(tt.want))
			time.Sleep(20 * time.Millisecond) // nothing more may come
			if got = m.wait(t, len(tt.want)); !slices.Equal(got, tt.want) {
				t.Fatalf("member got %v, want %v", got, tt.want)
			}
		})
	}
}

// A recovering member gets its live messages only after Live, without
// those its recovery sent, even when they arrive after Live.
func TestLive(t *testing.T) {
	h := hub.New(hub.Options{})
	t.Cleanup(h.Close)
	h.SetBroker(&stored{})
	m := &member{}
	if err := h.Join(context.Background(), "conversation:g", m, true); err != nil {
		t.Fatal(err)
	}
	h.Deliver(msg("a", 3))
	h.Deliver(msg("a", 4))
	if got := m.wait(t, 0); len(got) != 0 {
		t.Fatalf("a holding member was sent %v", got)
	}
	m.Send(hub.EncodeMessage(msg("a", 2)), time.Time{}) // the recovery's own
	m.Send(hub.EncodeMessage(msg("a", 3)), time.Time{})
	h.Live("conversation:g", m, "a", 3)
	h.Deliver(msg("a", 5))
	want := []string{"a/2", "a/3", "a/4", "a/5"}
	if got := m.wait(t, 4); !slices.Equal(got, want) {
		t.Fatalf("member got %v, want %v", got, want)
	}
}
