package broker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"switchboard/libs/redistest"
	"switchboard/services/gateway/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// inbox collects what a broker hands its handler.
type inbox struct {
	mu   sync.Mutex
	msgs []broker.Message
}

func (in *inbox) handle(m broker.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

func (in *inbox) wait(t *testing.T, n int) []broker.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in.mu.Lock()
		got := append([]broker.Message(nil), in.msgs...)
		in.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d messages, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMemory(t *testing.T) {
	var in inbox
	b := broker.NewMemory(in.handle, broker.HistoryOptions{})
	defer b.Close()
	ctx := context.Background()
	for i, room := range []string{"user:a", "user:a", "user:b", "user:a"} {
		if _, _, err := b.Publish(ctx, room, []byte(fmt.Sprint(i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	got := in.wait(t, 4)
	want := []uint64{1, 2, 1, 3}
	epochs := map[string]string{}
	for i, m := range got {
		if e, ok := epochs[m.Room]; ok && e != m.Epoch {
			t.Fatalf("message %d: epoch %s, earlier %s in the same room", i, m.Epoch, e)
		}
		epochs[m.Room] = m.Epoch
		if m.Offset != want[i] {
			t.Fatalf("message %d at offset %d, want %d", i, m.Offset, want[i])
		}
	}
	b.Close()
	if _, _, err := b.Publish(ctx, "user:a", []byte("1"), ""); err == nil {
		t.Fatal("publish after Close succeeded")
	}
}

func newRedis(t *testing.T, rs *redistest.Server, h broker.Handler) *broker.Redis {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, ContextTimeoutEnabled: true})
	b := broker.NewRedis(broker.RedisOptions{Client: c, Prefix: "bt:"}, h)
	t.Cleanup(func() {
		b.Close()
		c.Close()
	})
	return b
}

func ready(t *testing.T, b broker.Broker, rooms ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, room := range rooms {
		if err := b.Ready(ctx, room); err != nil {
			t.Fatalf("ready %s: %v", room, err)
		}
	}
}

// Subscriptions follow Want, on a single pub/sub connection, and messages
// arrive with their positions.
func TestRedis(t *testing.T) {
	rs := redistest.Start(t)
	rc := rs.Client()
	var in inbox
	b := newRedis(t, rs, in.handle)
	pub := newRedis(t, rs, func(broker.Message) {})
	ctx := context.Background()

	rooms := make([]string, 1000)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("conversation:%d", i)
	}
	b.Want(rooms, true)
	ready(t, b, rooms...)
	clients, err := rc.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(clients, "sub=1000"); n != 1 {
		t.Fatalf("want one connection holding the 1000 subscriptions:\n%s", clients)
	}

	e1, o1, err := pub.Publish(ctx, "conversation:7", []byte(`{"a":1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	_, o2, _ := pub.Publish(ctx, "conversation:7", []byte(`{"a":2}`), "")
	got := in.wait(t, 2)
	if got[0].Room != "conversation:7" || string(got[0].Data) != `{"a":1}` || got[0].Epoch != e1 ||
		got[0].Offset != o1 || got[1].Offset != o2 || o2 != o1+1 {
		t.Fatalf("got %+v, published at %s/%d and %d", got, e1, o1, o2)
	}

	b.Want(rooms[1:], false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		chans, _ := rc.PubSubChannels(ctx, "bt:*").Result()
		if len(chans) == 1 && chans[0] == "bt:{conversation:0}" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("channels left: %d", len(chans))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After Redis restarts empty, the broker resubscribes and a room starts a
// new epoch.
func TestRedisRestart(t *testing.T) {
	rs := redistest.Start(t)
	var in inbox
	b := newRedis(t, rs, in.handle)
	ctx := context.Background()
	b.Want([]string{"user:a"}, true)
	ready(t, b, "user:a")
	e1, _, err := b.Publish(ctx, "user:a", []byte("1"), "")
	if err != nil {
		t.Fatal(err)
	}
	in.wait(t, 1)

	rs.Restart()
	// Publishes made before the resubscription reach nobody (that is what
	// room history will repair); retry until one arrives.
	deadline := time.Now().Add(10 * time.Second)
	for {
		e2, off, err := b.Publish(ctx, "user:a", []byte("2"), "")
		if err == nil && e2 == e1 {
			t.Fatalf("the epoch %s survived a restart without persistence", e1)
		}
		time.Sleep(50 * time.Millisecond)
		in.mu.Lock()
		last := in.msgs[len(in.msgs)-1]
		in.mu.Unlock()
		if err == nil && last.Epoch == e2 {
			if last.Offset != off {
				t.Fatalf("delivered offset %d, published %d", last.Offset, off)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery after the restart")
		}
	}
}
