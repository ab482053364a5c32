package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"switchboard/libs/config"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// The abuse tests send what a misbehaving client would, over real gRPC on
// loopback, and check both the documented answer and that a well-behaved
// client is served afterwards.

// wellBehaved checks that c still stores and reads an entry.
func wellBehaved(t *testing.T, c cachev1.CacheServiceClient) {
	t.Helper()
	ctx := testCtx(t)
	key := fmt.Sprintf("well-behaved-%d", time.Now().UnixNano())
	if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "items", Key: key, Value: []byte("ok")}); err != nil {
		t.Fatalf("well-behaved Set: %v", err)
	}
	got, err := c.Get(ctx, &cachev1.GetRequest{Cache: "items", Key: key})
	if err != nil || string(got.GetValue()) != "ok" {
		t.Fatalf("well-behaved Get = %q, %v", got.GetValue(), err)
	}
}

// TestAbuseOversizedMessages: a message over CACHE_MAX_REQUEST_BYTES is
// refused with RESOURCE_EXHAUSTED before it is decoded, stores nothing,
// and the same connection is served afterwards.
func TestAbuseOversizedMessages(t *testing.T) {
	ts := startServer(t, testConfig(t), nil) // 64KiB a message
	c := dial(t, ts.addr)
	huge := make([]byte, 65<<10)
	manyKeys := make([]string, 100)
	for i := range manyKeys {
		manyKeys[i] = strings.Repeat("k", 63) + fmt.Sprint(i%10)
	}
	for _, tc := range []struct {
		name string
		call func(context.Context) error
	}{
		{"set", func(ctx context.Context) error {
			_, err := c.Set(ctx, &cachev1.SetRequest{Cache: "items", Key: "huge", Value: huge})
			return err
		}},
		{"get with a huge key", func(ctx context.Context) error {
			_, err := c.Get(ctx, &cachev1.GetRequest{Cache: "items", Key: string(huge)})
			return err
		}},
		{"batch set", func(ctx context.Context) error {
			entries := []*cachev1.Entry{{Key: "a", Value: huge[:40<<10]}, {Key: "huge", Value: huge[:40<<10]}}
			_, err := c.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: "items", Entries: entries})
			return err
		}},
		{"watch with a huge cache name", func(ctx context.Context) error {
			s, err := c.Watch(ctx, &cachev1.WatchRequest{Cache: string(huge)})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(testCtx(t)); status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("oversized %s = %v, want RESOURCE_EXHAUSTED", tc.name, err)
			}
			if got, err := c.Get(testCtx(t), &cachev1.GetRequest{Cache: "items", Key: "huge"}); err != nil || got.GetFound() {
				t.Fatalf("after a refused call the key exists (%v) or Get fails: %v", got.GetFound(), err)
			}
			wellBehaved(t, c)
		})
	}
	// Under the limit, the same batch size in keys is fine.
	if _, err := c.BatchGet(testCtx(t), &cachev1.BatchGetRequest{Cache: "items", Keys: manyKeys}); err != nil {
		t.Fatalf("BatchGet under the message limit: %v", err)
	}
}

// TestAbuseCallsWithoutDeadline: calls without a deadline are served, and
// the server bounds each unary call itself (CACHE_MAX_CALL_TIME, wired into
// server.GRPCOptions.MaxCallTime, whose own tests show a stuck call cut).
// The cache's handlers hold no lock a peer can keep, so nothing here can
// be made to wait: the bound is a backstop.
func TestAbuseCallsWithoutDeadline(t *testing.T) {
	cfg, err := loadConfig(config.New(config.Map(nil)))
	if err != nil || cfg.MaxCallTime != 5*time.Second {
		t.Fatalf("default CACHE_MAX_CALL_TIME = %s, %v; want 5s", cfg.MaxCallTime, err)
	}
	for _, v := range []string{"0", "5ms", "11m", "soon"} {
		_, err := loadConfig(config.New(config.Map(map[string]string{"CACHE_MAX_CALL_TIME": v})))
		if err == nil || !strings.Contains(err.Error(), "CACHE_MAX_CALL_TIME") {
			t.Errorf("CACHE_MAX_CALL_TIME=%s: %v, want a refusal naming it", v, err)
		}
	}

	test := testConfig(t)
	test.MaxCallTime = time.Second
	ts := startServer(t, test, nil)
	c := dial(t, ts.addr)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			// No deadline on purpose: the server's bound is the only one.
			_, err := c.Set(context.Background(), &cachev1.SetRequest{Cache: "wide", Key: fmt.Sprint(i), Value: []byte("v")})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a call without deadline: %v", err)
		}
	}
	wellBehaved(t, c)
}

// TestAbuseWatchFlood: of many Watch streams opened at once, exactly
// CACHE_MAX_WATCHERS are served and the rest get RESOURCE_EXHAUSTED; the
// open streams still receive events, a freed place can be taken again, and
// unary calls are served throughout.
func TestAbuseWatchFlood(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.MaxWatchers = 5
	ts := startServer(t, cfg, nil)
	c := dial(t, ts.addr)

	// Open every stream at once; a refused one may show its status on
	// Watch, on Header or only on the first Recv.
	const attempts = 40
	type opened struct {
		stream grpc.ServerStreamingClient[cachev1.WatchResponse]
		cancel context.CancelFunc
	}
	streams := make(chan opened, attempts)
	refusals := make(chan error, attempts)
	var wg sync.WaitGroup
	for range attempts {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(testCtx(t))
			s, err := c.Watch(ctx, &cachev1.WatchRequest{Cache: "items"})
			if err == nil {
				_, err = s.Header()
			}
			if err != nil {
				cancel()
				refusals <- err
				return
			}
			streams <- opened{s, cancel}
		})
	}
	wg.Wait()
	close(streams)
	close(refusals)

	refused := 0
	for err := range refusals {
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a refused Watch = %v, want RESOURCE_EXHAUSTED", err)
		}
		refused++
	}
	if _, err := c.Set(testCtx(t), &cachev1.SetRequest{Cache: "items", Key: "flood", Value: []byte("v")}); err != nil {
		t.Fatalf("Set during the flood: %v", err)
	}
	var served []opened
	for o := range streams {
		ev, err := o.stream.Recv()
		switch {
		case err == nil && ev.GetKey() == "flood":
			served = append(served, o)
			t.Cleanup(o.cancel)
		case status.Code(err) == codes.ResourceExhausted:
			refused++
			o.cancel()
		default:
			o.cancel()
			t.Fatalf("a watch got %v, %v", ev, err)
		}
	}
	if len(served) != cfg.Limits.MaxWatchers || refused != attempts-cfg.Limits.MaxWatchers {
		t.Fatalf("%d watches served and %d refused, want %d and %d",
			len(served), refused, cfg.Limits.MaxWatchers, attempts-cfg.Limits.MaxWatchers)
	}

	served[0].cancel()
	eventually(t, "a freed watcher place", func() bool {
		return ts.svc.api.watchers.Load() == int64(cfg.Limits.MaxWatchers-1)
	})
	again := watch(t, testCtx(t), c, "items")
	if _, err := c.Set(testCtx(t), &cachev1.SetRequest{Cache: "items", Key: "again", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if ev, err := again.Recv(); err != nil || ev.GetKey() != "again" {
		t.Fatalf("a watch in a freed place = %v, %v", ev, err)
	}
	wellBehaved(t, c)
}
