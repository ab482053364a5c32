package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/redistest"
	"switchboard/services/gateway/broker"
)

// brokers returns a fresh broker of each kind with small history bounds.
func brokers(t *testing.T, opts broker.HistoryOptions) map[string]broker.Broker {
	t.Helper()
	rs := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, ContextTimeoutEnabled: true})
	r := broker.NewRedis(broker.RedisOptions{Client: c, Prefix: "ht:", History: opts}, func(broker.Message) {})
	m := broker.NewMemory(func(broker.Message) {}, opts)
	t.Cleanup(func() {
		r.Close()
		c.Close()
		m.Close()
	})
	return map[string]broker.Broker{"redis": r, "memory": m}
}

func publishN(t *testing.T, b broker.Broker, room string, n int) (string, uint64) {
	t.Helper()
	var epoch string
	var off uint64
	for i := range n {
		var err error
		epoch, off, err = b.Publish(context.Background(), room, []byte(fmt.Sprint(i)), "")
		if err != nil {
			t.Fatal(err)
		}
	}
	return epoch, off
}

// History serves the messages after a position in order, and refuses a
// position the room's bounds no longer reach or another epoch.
func TestHistory(t *testing.T) {
	opts := broker.HistoryOptions{
		Conversation: broker.Retention{Size: 5, TTL: time.Hour},
		User:         broker.Retention{Size: 300, TTL: time.Hour},
	}
	for name, b := range brokers(t, opts) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			epoch, last := publishN(t, b, "user:u", 250)
			if last != 250 {
				t.Fatalf("last offset %d, want 250", last)
			}
			tests := []struct {
				name      string
				epoch     string
				after     uint64
				first, n  uint64
				recovered bool
			}{
				{"from the start", epoch, 0, 1, 250, true},
				{"the tail", epoch, 245, 246, 5, true},
				{"nothing missed", epoch, 250, 0, 0, true},
				{"ahead of the room", epoch, 251, 0, 0, false},
				{"another epoch", "0123456789abcdef", 10, 0, 0, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					msgs, err := b.History(ctx, "user:u", tt.epoch, tt.after)
					if !tt.recovered {
						if !errors.Is(err, broker.ErrNotRecoverable) {
							t.Fatalf("got %d messages, err %v; want not recoverable", len(msgs), err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if uint64(len(msgs)) != tt.n {
						t.Fatalf("got %d messages, want %d", len(msgs), tt.n)
					}
					for i, m := range msgs {
						if m.Offset != tt.first+uint64(i) || m.Epoch != epoch || string(m.Data) != fmt.Sprint(m.Offset-1) {
							t.Fatalf("message %d: %+v", i, m)
						}
					}
				})
			}

			// 300 messages in a room kept to 5 (Redis trims in whole
			// stream nodes of 100): the first ones are gone.
			e2, _ := publishN(t, b, "conversation:c", 300)
			if _, err := b.History(ctx, "conversation:c", e2, 0); !errors.Is(err, broker.ErrNotRecoverable) {
				t.Fatalf("history from offset 0 of a trimmed room: %v, want not recoverable", err)
			}
			if msgs, err := b.History(ctx, "conversation:c", e2, 296); err != nil || len(msgs) != 4 {
				t.Fatalf("tail of a trimmed room: %d messages, %v", len(msgs), err)
			}
		})
	}
}

// A publish with a key seen within the window answers with the original
// position and is stored once, whether the repeats are sequential or race.
func TestIdempotency(t *testing.T) {
	for name, b := range brokers(t, broker.HistoryOptions{}) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e1, o1, err := b.Publish(ctx, "conversation:i", []byte("1"), "k1")
			if err != nil {
				t.Fatal(err)
			}
			e2, o2, err := b.Publish(ctx, "conversation:i", []byte("1"), "k1")
			if err != nil || e2 != e1 || o2 != o1 {
				t.Fatalf("repeat answered %s/%d %v, want %s/%d", e2, o2, err, e1, o1)
			}

			var wg sync.WaitGroup
			offsets := make([]uint64, 8)
			for i := range offsets {
				wg.Go(func() {
					_, offsets[i], _ = b.Publish(ctx, "conversation:i", []byte("2"), "k2")
				})
			}
			wg.Wait()
			for _, o := range offsets {
				if o != offsets[0] || o == 0 {
					t.Fatalf("racing repeats answered offsets %v", offsets)
				}
			}
			msgs, err := b.History(ctx, "conversation:i", e1, 0)
			if err != nil || len(msgs) != 2 {
				t.Fatalf("history holds %d messages (%v), want 2", len(msgs), err)
			}
		})
	}
}
