package main

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// watch opens a Watch stream and waits until the server has registered it.
func watch(t *testing.T, ctx context.Context, c cachev1.CacheServiceClient, cache string) grpc.ServerStreamingClient[cachev1.WatchResponse] {
	t.Helper()
	s, err := c.Watch(ctx, &cachev1.WatchRequest{Cache: cache})
	if err != nil {
		t.Fatalf("Watch %s: %v", cache, err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatalf("Watch %s header: %v", cache, err)
	}
	return s
}

func TestWatch(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.WatchBuffer = 64
	ts := startServer(t, cfg, nil)
	c := dial(t, ts.addr)
	ctx := testCtx(t)
	s := watch(t, ctx, c, "tiny")

	for _, k := range []string{"a", "b", "c"} { // c evicts a (fifo, 2 entries)
		if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "tiny", Key: k}); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}
	if _, err := c.Delete(ctx, &cachev1.DeleteRequest{Cache: "tiny", Key: "b"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// Another cache's events do not reach this watcher.
	if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "items", Key: "x"}); err != nil {
		t.Fatalf("Set items: %v", err)
	}

	var got []string
	for range 5 {
		ev, err := s.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if ev.Dropped != 0 || ev.Time == nil {
			t.Fatalf("event %v: want no drops and a time", ev)
		}
		got = append(got, fmt.Sprintf("%s %s", ev.Kind, ev.Key))
	}
	// The order of a set and the eviction it causes is the store's; the
	// delete comes last.
	want := []string{
		"EVENT_KIND_DELETE b", "EVENT_KIND_EVICT a", "EVENT_KIND_SET a",
		"EVENT_KIND_SET b", "EVENT_KIND_SET c",
	}
	if got[4] != "EVENT_KIND_DELETE b" {
		t.Errorf("last event = %s, want the delete of b", got[4])
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

// A watcher that does not read loses events, is told how many, and never
// holds up writers: every write here completes while it reads nothing.
func TestWatchSlowWatcherDrops(t *testing.T) {
	ts := startServer(t, testConfig(t), nil) // 4 events per watcher
	ctx := testCtx(t)
	// Small HTTP/2 windows, so that the server's sends stall soon and the
	// watcher's buffer fills.
	slow := dial(t, ts.addr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	s := watch(t, ctx, slow, "wide")

	const batches, perBatch = 100, 100
	c := dial(t, ts.addr)
	for b := range batches {
		entries := make([]*cachev1.Entry, perBatch)
		for i := range entries {
			entries[i] = &cachev1.Entry{Key: fmt.Sprintf("%060d", b*perBatch+i), Value: []byte("v")}
		}
		if _, err := c.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: "wide", Entries: entries}); err != nil {
			t.Fatalf("BatchSet %d: %v", b, err)
		}
	}

	// Every event is either received or counted as dropped.
	var received, dropped, gaps uint64
	for received+dropped < batches*perBatch {
		ev, err := s.Recv()
		if err != nil {
			t.Fatalf("Recv after %d received and %d dropped: %v", received, dropped, err)
		}
		dropped += ev.Dropped
		switch ev.Kind {
		case cachev1.EventKind_EVENT_KIND_SET:
			received++
		case cachev1.EventKind_EVENT_KIND_UNSPECIFIED:
			gaps++
			if ev.Key != "" || ev.Dropped == 0 {
				t.Fatalf("gap event %v: want no key and a count", ev)
			}
		default:
			t.Fatalf("unexpected event %v", ev)
		}
	}
	if dropped == 0 {
		t.Fatalf("received all %d events: the watcher was never slow enough to test", received)
	}
	if got := ts.svc.caches.get("wide").hub.dropped.Load(); got != dropped {
		t.Errorf("hub counted %d dropped, the watcher was told %d", got, dropped)
	}
	t.Logf("received %d, dropped %d, gap events %d", received, dropped, gaps)
}

func TestWatchEnds(t *testing.T) {
	ts := startServer(t, testConfig(t), nil) // at most 2 watchers
	c := dial(t, ts.addr)
	ctx := testCtx(t)
	hub := ts.svc.caches.get("items").hub

	// A watcher that the client cancels is removed.
	cctx, cancel := context.WithCancel(ctx)
	watch(t, cctx, c, "items")
	eventually(t, "one watcher", func() bool { return hub.count.Load() == 1 })
	cancel()
	eventually(t, "no watcher", func() bool {
		return hub.count.Load() == 0 && ts.svc.api.watchers.Load() == 0
	})

	// Past the limit, a watcher is refused.
	first := watch(t, ctx, c, "items")
	watch(t, ctx, c, "tiny")
	third, err := c.Watch(ctx, &cachev1.WatchRequest{Cache: "items"})
	if err == nil {
		_, err = third.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third watcher: %v, want ResourceExhausted", err)
	}

	// A stopping server ends its watchers, and so stops without waiting
	// out its grace period.
	if err := ts.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// The status is the service's own, not the transport's after a forced
	// stop.
	_, err = first.Recv()
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "server is stopping" {
		t.Fatalf("Recv after stop: %v, want Unavailable: server is stopping", err)
	}
}
