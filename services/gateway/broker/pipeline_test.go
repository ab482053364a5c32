package broker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/redistest"
)

func newHistory(t testing.TB) (RedisHistory, *redis.Client, *redistest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	h := RedisHistory{Client: c, Prefix: "pt:", Opts: HistoryOptions{}.WithDefaults(), pipeline: newPublishPipeline(c)}
	return h, c, rs
}

// Publishes that arrive while one is out wait for it and then leave
// together: Redis holds the first (CLIENT PAUSE), twenty more queue
// behind it, and all of them are acknowledged with the room's next
// offsets, over one connection where each used to take its own.
func TestPublishesWaitingTogetherShareOnePipeline(t *testing.T) {
	h, c, rs := newHistory(t)
	ctx := context.Background()
	const room, n = "conversation:p", 20
	epoch, _, _, err := h.Publish(ctx, PublishArgs{Room: room, Data: []byte(`{"n":0}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().ClientPause(ctx, 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}

	offsets := make(chan uint64, n+1)
	var wg sync.WaitGroup
	publish := func() {
		_, off, _, err := h.Publish(ctx, PublishArgs{Room: room, Data: []byte(`{}`)})
		if err != nil {
			t.Error(err)
			return
		}
		offsets <- off
	}
	wg.Go(publish) // held by the pause
	time.Sleep(50 * time.Millisecond)
	for range n {
		wg.Go(publish)
	}
	wg.Wait()
	close(offsets)

	seen := map[uint64]bool{}
	for off := range offsets {
		if seen[off] || off < 2 || off > n+2 {
			t.Fatalf("offset %d repeated or outside 2..%d", off, n+2)
		}
		seen[off] = true
	}
	if len(seen) != n+1 {
		t.Fatalf("%d of %d publishes acknowledged", len(seen), n+1)
	}
	if conns := c.PoolStats().TotalConns; conns > 2 {
		t.Fatalf("the publishes opened %d connections to Redis, want 1 or 2: they did not wait for the one out", conns)
	}
	msgs, err := h.History(ctx, room, epoch, 0)
	if err != nil || len(msgs) != n+2 {
		t.Fatalf("history: %d messages, %v; want %d", len(msgs), err, n+2)
	}
}

// A pipeline that finds Redis without the script (restarted, SCRIPT
// FLUSH) runs each publish again with the script loaded; none is lost or
// doubled.
func TestPipelineReloadsTheScript(t *testing.T) {
	h, c, _ := newHistory(t)
	ctx := context.Background()
	const room = "conversation:s"
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	batch := make([]*publishCall, 3)
	for i := range batch {
		batch[i] = call(ctx, h, room)
	}
	h.pipeline.send(batch)
	for i, bc := range batch {
		if bc.err != nil {
			t.Fatalf("publish %d: %v", i, bc.err)
		}
		if off, _ := bc.res[1].(int64); off != int64(i+1) {
			t.Fatalf("publish %d got offset %d, want %d", i, off, i+1)
		}
	}
}

// A publish whose caller gave up while it waited is not sent.
func TestPipelineSkipsCallsGivenUp(t *testing.T) {
	h, _, _ := newHistory(t)
	ctx := context.Background()
	const room = "conversation:g"
	gone, cancel := context.WithCancel(ctx)
	cancel()
	batch := []*publishCall{call(ctx, h, room), call(gone, h, room), call(ctx, h, room)}
	h.pipeline.send(batch)
	if !errors.Is(batch[1].err, context.Canceled) {
		t.Fatalf("the call given up: %v, want %v", batch[1].err, context.Canceled)
	}
	for _, i := range []int{0, 2} {
		if off, _ := batch[i].res[1].(int64); batch[i].err != nil || off != int64(i/2+1) {
			t.Fatalf("publish %d: offset %d, %v; want offset %d", i, off, batch[i].err, i/2+1)
		}
	}
}

// call is the publish script's call for a publish to room.
func call(ctx context.Context, h RedisHistory, room string) *publishCall {
	keys, args := h.scriptArgs(PublishArgs{Room: room, Data: []byte("{}")})
	return &publishCall{ctx: ctx, keys: keys, args: args}
}
