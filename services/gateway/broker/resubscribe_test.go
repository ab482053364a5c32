package broker_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/hub"
)

// member is a hub member recording the offsets it is sent, and "resync"
// pushes as offset 0.
type member struct {
	mu      sync.Mutex
	offsets []uint64
}

func (m *member) Send(frame []byte, _ time.Time) {
	var f protocol.Frame
	json.Unmarshal(frame, &f)
	m.mu.Lock()
	m.offsets = append(m.offsets, f.Offset)
	m.mu.Unlock()
}
func (m *member) AccessRevoked(string)     {}
func (m *member) SessionRevoked(string)    {}
func (m *member) Session() string          { return "" }
func (m *member) Close(protocol.CloseCode) {}

func (m *member) received() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]uint64(nil), m.offsets...)
}

// resubscribed counts a broker's OnResubscribed calls for one room.
type resubscribed struct {
	room string
	n    atomic.Int64
}

func (r *resubscribed) call(room string) {
	if room == r.room {
		r.n.Add(1)
	}
}

// When the pub/sub connection is killed, the broker subscribes again and
// reports the room resubscribed; the hub reads what the broker missed
// meanwhile from history, so its member gets every message once, in order.
func TestRedisPubSubKilled(t *testing.T) {
	rs := redistest.Start(t)
	const room = "conversation:k"
	h := hub.New(hub.Options{})
	t.Cleanup(h.Close)
	var arrived atomic.Int64 // messages that came over pub/sub
	resub := &resubscribed{room: room}
	b := broker.NewRedis(broker.RedisOptions{Client: rs.Client(), Prefix: "bt:", OnResubscribed: resub.call},
		func(m broker.Message) {
			arrived.Add(1)
			h.Deliver(m)
		})
	t.Cleanup(func() { b.Close() })
	h.SetBroker(b)
	pub := newRedis(t, rs, func(broker.Message) {})
	m := &member{}
	if err := h.Join(context.Background(), room, m, false); err != nil {
		t.Fatal(err)
	}

	_, last := publishN(t, pub, room, 5)
	poll(t, func() bool { return arrived.Load() == int64(last) })
	// Redis drops what it publishes while the connection is down; kill it
	// again until some message was missed, so that the repair is tested.
	for round := 1; arrived.Load() == int64(last); round++ {
		if round > 3 {
			t.Fatal("no message published during three outages was missed")
		}
		last = outage(t, rs, pub, room, resub)
		time.Sleep(100 * time.Millisecond) // what will arrive has arrived
	}
	_, last = publishN(t, pub, room, 5)

	poll(t, func() bool { return len(m.received()) >= int(last) })
	time.Sleep(50 * time.Millisecond) // nothing more may come
	got := m.received()
	for i, off := range got {
		if off != uint64(i+1) || len(got) != int(last) {
			t.Fatalf("member got offsets %v, want 1..%d once each in order", got, last)
		}
	}
	t.Logf("%d published, %d came over pub/sub, %d resubscriptions", last, arrived.Load(), resub.n.Load())
}

// outage kills the pub/sub connections and publishes to room every
// millisecond until the broker reports room resubscribed; it returns the
// last offset published.
func outage(t *testing.T, rs *redistest.Server, pub broker.Broker, room string, resub *resubscribed) uint64 {
	t.Helper()
	ctx := context.Background()
	before := resub.n.Load()
	if err := rs.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var last uint64
	for resub.n.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the room was not reported resubscribed within 10s")
		}
		_, off, err := pub.Publish(ctx, room, []byte(`"during"`), "")
		if err != nil {
			t.Fatal(err)
		}
		last = off
		time.Sleep(time.Millisecond)
	}
	return last
}
