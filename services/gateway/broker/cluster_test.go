package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/redistest"
	"switchboard/services/gateway/broker"
)

const clusterPrefix = "ct:"

// cluster is a three-node Redis Cluster shared by the tests of one
// function.
type cluster struct {
	*redistest.Cluster
	cc *redis.ClusterClient
}

func startCluster(t *testing.T) cluster {
	t.Helper()
	c := redistest.StartCluster(t, 3)
	return cluster{Cluster: c, cc: c.Client()}
}

func (c cluster) broker(t *testing.T, opts broker.ClusterOptions, h broker.Handler) *broker.Cluster {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
	opts.Client, opts.Prefix = cc, clusterPrefix
	b := broker.NewCluster(opts, h)
	t.Cleanup(func() {
		b.Close()
		cc.Close()
	})
	return b
}

// owner returns the address of the node that owns room's slot.
func (c cluster) owner(t *testing.T, room string) string {
	t.Helper()
	m, err := c.cc.MasterForKey(context.Background(), broker.KeysOf(clusterPrefix, room).Channel)
	if err != nil {
		t.Fatal(err)
	}
	return m.Options().Addr
}

// spread returns rooms whose slots differ, at least two on every node.
func (c cluster) spread(t *testing.T) []string {
	t.Helper()
	perNode := map[string]int{}
	slots := map[int]bool{}
	var rooms []string
	for i := 0; len(perNode) < 3 || slices.Min(counts(perNode)) < 2; i++ {
		room := fmt.Sprintf("conversation:%d", i)
		slot := broker.Slot(broker.KeysOf(clusterPrefix, room).Channel)
		if slots[slot] {
			continue
		}
		slots[slot] = true
		perNode[c.owner(t, room)]++
		rooms = append(rooms, room)
	}
	return rooms
}

func counts(m map[string]int) []int {
	var n []int
	for _, v := range m {
		n = append(n, v)
	}
	return n
}

// shardChannels returns PUBSUB SHARDCHANNELS of the node at addr.
func (c cluster) shardChannels(t *testing.T, addr string) []string {
	t.Helper()
	n := redis.NewClient(&redis.Options{Addr: addr})
	defer n.Close()
	chans, err := n.PubSubShardChannels(context.Background(), clusterPrefix+"*").Result()
	if err != nil {
		t.Fatalf("PUBSUB SHARDCHANNELS on %s: %v", addr, err)
	}
	slices.Sort(chans)
	return chans
}

// waitShardChannels polls every node until each holds exactly the channels
// of the rooms it owns among rooms.
func (c cluster) waitShardChannels(t *testing.T, rooms []string) {
	t.Helper()
	want := map[string][]string{}
	for _, room := range rooms {
		addr := c.owner(t, room)
		want[addr] = append(want[addr], broker.KeysOf(clusterPrefix, room).Channel)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range c.Addrs() {
		slices.Sort(want[addr])
		for {
			got := c.shardChannels(t, addr)
			if slices.Equal(got, want[addr]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s has shard channels %v, want %v", addr, got, want[addr])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Two brokers on a three-node cluster: subscriptions follow Want on the
// node owning each room, messages cross brokers with their positions,
// history and idempotency hold, and forwards reach the named replica.
func TestCluster(t *testing.T) {
	c := startCluster(t)
	var inA, inB inbox
	var fwdMu sync.Mutex
	var forwarded []string
	a := c.broker(t, broker.ClusterOptions{OnForward: func(p []byte) {
		fwdMu.Lock()
		forwarded = append(forwarded, string(p))
		fwdMu.Unlock()
	}}, inA.handle)
	b := c.broker(t, broker.ClusterOptions{}, inB.handle)
	ctx := context.Background()
	rooms := c.spread(t)

	t.Run("subscribe only while wanted", func(t *testing.T) {
		c.waitShardChannels(t, nil)
		a.Want(rooms, true)
		ready(t, a, rooms...)
		c.waitShardChannels(t, rooms)
	})

	t.Run("messages cross brokers", func(t *testing.T) {
		type pos struct {
			epoch  string
			offset uint64
		}
		published := map[string]pos{}
		for i, room := range rooms {
			e, o, err := b.Publish(ctx, room, []byte(fmt.Sprintf(`{"n":%d}`, i)), "")
			if err != nil {
				t.Fatalf("publish to %s: %v", room, err)
			}
			published[room] = pos{e, o}
		}
		got := inA.wait(t, len(rooms))
		for _, m := range got {
			if p := published[m.Room]; p.epoch != m.Epoch || p.offset != m.Offset {
				t.Fatalf("%s delivered at %s/%d, published at %s/%d", m.Room, m.Epoch, m.Offset, p.epoch, p.offset)
			}
		}
		if n := len(inB.wait(t, 0)); n != 0 {
			t.Fatalf("broker b wants no room and received %d messages", n)
		}
	})

	t.Run("history and idempotency", func(t *testing.T) {
		room := rooms[len(rooms)-1]
		before := len(inA.wait(t, 0))
		e1, o1, err := b.Publish(ctx, room, []byte(`"x"`), "key-1")
		if err != nil {
			t.Fatal(err)
		}
		e2, o2, err := a.Publish(ctx, room, []byte(`"x"`), "key-1")
		if err != nil || e2 != e1 || o2 != o1 {
			t.Fatalf("repeated key published at %s/%d (%v), first at %s/%d", e2, o2, err, e1, o1)
		}
		if _, _, err := b.Publish(ctx, room, []byte(`"y"`), ""); err != nil {
			t.Fatal(err)
		}
		// "y" follows the duplicate on the same channel: a duplicate
		// delivery would arrive before it.
		var got []broker.Message
		poll(t, func() bool {
			got = inA.wait(t, before+1)
			return string(got[len(got)-1].Data) == `"y"`
		})
		if len(got) != before+2 {
			t.Fatalf("%d messages after one duplicate and one new publish, want %d", len(got), before+2)
		}
		hist, err := a.History(ctx, room, e1, o1-1)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || string(hist[0].Data) != `"x"` || hist[0].Offset != o1 ||
			string(hist[1].Data) != `"y"` || hist[1].Offset != o1+1 {
			t.Fatalf("history after %d: %+v", o1-1, hist)
		}
		if _, err := a.History(ctx, room, "other-epoch", 0); err != broker.ErrNotRecoverable {
			t.Fatalf("history of another epoch: %v, want ErrNotRecoverable", err)
		}
	})

	t.Run("forward", func(t *testing.T) {
		a.Want([]string{broker.NodeRoom("a")}, true)
		ready(t, a, broker.NodeRoom("a"))
		if ok, err := b.Forward(ctx, "a", []byte("hello")); !ok || err != nil {
			t.Fatalf("forward to a: %v, %v", ok, err)
		}
		if ok, err := b.Forward(ctx, "nobody", []byte("lost")); ok || err != nil {
			t.Fatalf("forward to nobody: %v, %v", ok, err)
		}
		poll(t, func() bool {
			fwdMu.Lock()
			defer fwdMu.Unlock()
			return slices.Equal(forwarded, []string{"hello"})
		})
		a.Want([]string{broker.NodeRoom("a")}, false)
	})

	t.Run("unsubscribe when no longer wanted", func(t *testing.T) {
		a.Want(rooms[1:], false)
		c.waitShardChannels(t, rooms[:1])
		a.Want(rooms[:1], false)
		c.waitShardChannels(t, nil)
	})

	t.Run("one connection per slot", func(t *testing.T) {
		x, y := sameSlot(t)
		want := []string{x, y, rooms[0]}
		a.Want(want, true)
		ready(t, a, want...)
		c.waitShardChannels(t, want)
		if got := c.ssubs(t); !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("sharded subscriptions per connection %v, want [1 2]", got)
		}
		a.Want(want, false)
		c.waitShardChannels(t, nil)
	})
}

// sameSlot returns two rooms whose channels share a hash slot.
func sameSlot(t *testing.T) (string, string) {
	t.Helper()
	seen := map[int]string{}
	for i := range 100_000 {
		room := fmt.Sprintf("conversation:s%d", i)
		slot := broker.Slot(broker.KeysOf(clusterPrefix, room).Channel)
		if other, ok := seen[slot]; ok {
			return other, room
		}
		seen[slot] = room
	}
	t.Fatal("no two rooms share a slot")
	return "", ""
}

// ssubs returns, sorted, the number of sharded channels of every
// connection that holds any, over all nodes.
func (c cluster) ssubs(t *testing.T) []int {
	t.Helper()
	var n []int
	for _, addr := range c.Addrs() {
		cl := redis.NewClient(&redis.Options{Addr: addr})
		list, err := cl.ClientList(context.Background()).Result()
		cl.Close()
		if err != nil {
			t.Fatalf("CLIENT LIST on %s: %v", addr, err)
		}
		for _, line := range strings.Split(list, "\n") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "ssub="); ok && v != "0" {
					k, _ := strconv.Atoi(v)
					n = append(n, k)
				}
			}
		}
	}
	slices.Sort(n)
	return n
}

// After the node owning a room restarts empty, the broker subscribes
// again, reports the room as resubscribed (the gateway repairs the gap from
// history) and receives the room's next messages in a new epoch.
func TestClusterNodeRestart(t *testing.T) {
	c := startCluster(t)
	var in inbox
	var mu sync.Mutex
	var resubscribed []string
	a := c.broker(t, broker.ClusterOptions{OnResubscribed: func(room string) {
		mu.Lock()
		resubscribed = append(resubscribed, room)
		mu.Unlock()
	}}, in.handle)
	b := c.broker(t, broker.ClusterOptions{}, func(broker.Message) {})
	ctx := context.Background()
	rooms := c.spread(t)
	a.Want(rooms, true)
	ready(t, a, rooms...)
	room := rooms[0]
	e1, _, err := b.Publish(ctx, room, []byte("1"), "")
	if err != nil {
		t.Fatal(err)
	}
	in.wait(t, 1)

	owner := c.Node(c.owner(t, room))
	owner.Restart()
	c.WaitOK()
	poll(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(resubscribed, room)
	})
	mu.Lock()
	for _, r := range resubscribed {
		if c.owner(t, r) != owner.Addr {
			t.Errorf("%s, on an untouched node, reported resubscribed", r)
		}
	}
	mu.Unlock()

	e2, o2, err := b.Publish(ctx, room, []byte("2"), "")
	if err != nil {
		t.Fatal(err)
	}
	if e2 == e1 {
		t.Fatalf("epoch %s survived a restart without persistence", e1)
	}
	got := in.wait(t, 2)
	if last := got[len(got)-1]; last.Epoch != e2 || last.Offset != o2 {
		t.Fatalf("delivered %s/%d, published %s/%d", last.Epoch, last.Offset, e2, o2)
	}
}

func poll(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// When a room's slot moves to another node, that node's old owner
// unsubscribes the broker; the broker subscribes on the new owner, reports
// the room for gap repair and receives the room's next messages, whose
// position continues (the keys moved with the slot).
func TestClusterSlotMoved(t *testing.T) {
	c := startCluster(t)
	var in inbox
	var mu sync.Mutex
	var resubscribed []string
	a := c.broker(t, broker.ClusterOptions{OnResubscribed: func(room string) {
		mu.Lock()
		resubscribed = append(resubscribed, room)
		mu.Unlock()
	}}, in.handle)
	b := c.broker(t, broker.ClusterOptions{}, func(broker.Message) {})
	ctx := context.Background()
	rooms := c.spread(t)
	a.Want(rooms, true)
	ready(t, a, rooms...)
	room := rooms[0]
	e1, o1, err := b.Publish(ctx, room, []byte("1"), "")
	if err != nil {
		t.Fatal(err)
	}
	in.wait(t, 1)

	from := c.owner(t, room)
	var to *redistest.Server
	for _, s := range c.Nodes {
		if s.Addr != from {
			to = s
			break
		}
	}
	c.MoveSlot(broker.Slot(broker.KeysOf(clusterPrefix, room).Channel), to)
	poll(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(resubscribed, room)
	})
	c.cc.ReloadState(ctx)
	poll(t, func() bool { return c.owner(t, room) == to.Addr })
	c.waitShardChannels(t, rooms)

	e2, o2, err := b.Publish(ctx, room, []byte("2"), "")
	if err != nil {
		t.Fatal(err)
	}
	if e2 != e1 || o2 != o1+1 {
		t.Fatalf("published at %s/%d after the move, %s/%d before", e2, o2, e1, o1)
	}
	got := in.wait(t, 2)
	if last := got[len(got)-1]; last.Epoch != e2 || last.Offset != o2 {
		t.Fatalf("delivered %s/%d, published %s/%d", last.Epoch, last.Offset, e2, o2)
	}
}

// When the node owning a room dies, its replica takes over; the broker
// subscribes on the new master, reports the room for gap repair and
// receives the room's next messages.
func TestClusterFailover(t *testing.T) {
	rc := redistest.StartClusterReplicas(t, 3, 1)
	c := cluster{Cluster: rc, cc: rc.Client()}
	var in inbox
	var mu sync.Mutex
	var resubscribed []string
	a := c.broker(t, broker.ClusterOptions{OnResubscribed: func(room string) {
		mu.Lock()
		resubscribed = append(resubscribed, room)
		mu.Unlock()
	}}, in.handle)
	b := c.broker(t, broker.ClusterOptions{}, func(broker.Message) {})
	ctx := context.Background()
	room := "conversation:failover"
	a.Want([]string{room}, true)
	ready(t, a, room)
	if _, _, err := b.Publish(ctx, room, []byte("1"), ""); err != nil {
		t.Fatal(err)
	}
	in.wait(t, 1)

	c.Node(c.owner(t, room)).Kill()
	poll(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(resubscribed, room)
	})
	var e string
	var o uint64
	poll(t, func() bool { // the publisher's client learns the new master
		var err error
		e, o, err = b.Publish(ctx, room, []byte("2"), "")
		return err == nil
	})
	poll(t, func() bool {
		got := in.wait(t, 1)
		last := got[len(got)-1]
		return last.Epoch == e && last.Offset == o
	})
}
