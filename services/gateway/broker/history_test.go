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

// stamp bounds when a broker stamped a message: between the start and the
// end of its Publish call.
type stamp struct{ before, after time.Time }

// publishTimed publishes to room with key and returns the position and
// its stamp.
func publishTimed(t *testing.T, b broker.Broker, room, key string) (string, uint64, stamp) {
	t.Helper()
	before := time.Now()
	epoch, off, err := b.Publish(context.Background(), room, []byte(`"x"`), key)
	if err != nil {
		t.Fatal(err)
	}
	return epoch, off, stamp{before, time.Now()}
}

// Messages older than their room's age leave its history: a join naming
// a position before one of them is not recoverable, one naming a position
// after them still gets every later message.
func TestHistoryAge(t *testing.T) {
	const age = time.Second // the shortest Redis keeps: TTLs are whole seconds
	opts := broker.HistoryOptions{Conversation: broker.Retention{Size: 1000, TTL: age}}
	for name, b := range brokers(t, opts) {
		t.Run(name, func(t *testing.T) {
			var epoch string
			stamps := []stamp{{}} // stamps[offset]
			for range 12 {
				var off uint64
				var s stamp
				epoch, off, s = publishTimed(t, b, "conversation:age", "")
				if off != uint64(len(stamps)) {
					t.Fatalf("offset %d, want %d: the room started a new epoch", off, len(stamps))
				}
				stamps = append(stamps, s)
				time.Sleep(age / 8)
			}
			last := stamps[len(stamps)-1]
			gone, kept := 0, 0
			for off := 1; off < len(stamps); off++ {
				switch {
				case stamps[off].after.Add(10 * time.Millisecond).Before(last.before.Add(-age)):
					gone++
					assertNotRecoverable(t, b, "conversation:age", epoch, uint64(off-1))
				case stamps[off].before.Add(-10 * time.Millisecond).After(last.after.Add(-age)):
					kept++
					assertHistory(t, b, "conversation:age", epoch, uint64(off-1), uint64(len(stamps)-1))
				}
			}
			if gone == 0 || kept == 0 {
				t.Fatalf("%d messages surely older than %s, %d surely younger; want some of each", gone, age, kept)
			}
		})
	}
}

// Entries the length bound removed do not hide old ones from the age
// bound: after a burst that the length bound trimmed, publishes that
// keep the room alive past the age drop every older entry and keep the
// newest.
func TestHistoryAgeAfterLengthTrim(t *testing.T) {
	const age = time.Second // also the keys' TTL: the room stays alive while published to
	opts := broker.HistoryOptions{Conversation: broker.Retention{Size: 100, TTL: age}}
	for name, b := range brokers(t, opts) {
		t.Run(name, func(t *testing.T) {
			const room = "conversation:burst"
			epoch, last := publishN(t, b, room, 350) // past the length bound by whole stream nodes
			off := last
			for range 13 {
				time.Sleep(age / 10)
				e, o := publishN(t, b, room, 1)
				if e != epoch || o != off+1 {
					t.Fatalf("epoch %s offset %d after %s %d: the room expired between publishes", e, o, epoch, off)
				}
				off = o
			}
			// The entry after the burst is 1.2 s older than the last.
			assertNotRecoverable(t, b, room, epoch, last)
			assertHistory(t, b, room, epoch, off-1, off)
		})
	}
}

func assertNotRecoverable(t *testing.T, b broker.Broker, room, epoch string, after uint64) {
	t.Helper()
	msgs, err := b.History(context.Background(), room, epoch, after)
	if !errors.Is(err, broker.ErrNotRecoverable) {
		t.Fatalf("history after %d: %d messages, err %v; want not recoverable", after, len(msgs), err)
	}
}

// assertHistory checks that the history after a position holds every
// offset up to last, in order.
func assertHistory(t *testing.T, b broker.Broker, room, epoch string, after, last uint64) {
	t.Helper()
	msgs, err := b.History(context.Background(), room, epoch, after)
	if err != nil {
		t.Fatalf("history after %d: %v", after, err)
	}
	if uint64(len(msgs)) != last-after {
		t.Fatalf("history after %d: %d messages, want %d", after, len(msgs), last-after)
	}
	for i, m := range msgs {
		if m.Offset != after+1+uint64(i) {
			t.Fatalf("history after %d: message %d at offset %d", after, i, m.Offset)
		}
	}
}

// An idempotency key answers with the original position inside the
// window; past it the same key publishes again, at a new offset.
func TestIdempotencyWindow(t *testing.T) {
	const window = 500 * time.Millisecond
	for name, b := range brokers(t, broker.HistoryOptions{IdempotencyWindow: window}) {
		t.Run(name, func(t *testing.T) {
			room := "conversation:w"
			e1, o1, s1 := publishTimed(t, b, room, "k")
			e2, o2, s2 := publishTimed(t, b, room, "k")
			if s2.after.Sub(s1.before) >= window {
				t.Fatalf("two publishes took %s, past the window", s2.after.Sub(s1.before))
			}
			if e2 != e1 || o2 != o1 {
				t.Fatalf("inside the window the repeat answered %s/%d, want %s/%d", e2, o2, e1, o1)
			}

			time.Sleep(2 * window)
			e3, o3, _ := publishTimed(t, b, room, "k")
			if e3 != e1 || o3 != o1+1 {
				t.Fatalf("past the window the key answered %s/%d, want a new publish at %s/%d", e3, o3, e1, o1+1)
			}
			e4, o4, _ := publishTimed(t, b, room, "k")
			if e4 != e3 || o4 != o3 {
				t.Fatalf("the key's new publish is not remembered: %s/%d, want %s/%d", e4, o4, e3, o3)
			}
			assertHistory(t, b, room, e1, 0, o3)
		})
	}
}
