package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	cachev1 "switchboard/proto/switchboard/cache/v1"
)

func TestGetSetDelete(t *testing.T) {
	ts := startServer(t, testConfig(t), nil)
	c := dial(t, ts.addr)
	ctx := testCtx(t)

	if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "items", Key: "a", Value: []byte("one")}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	got, err := c.Get(ctx, &cachev1.GetRequest{Cache: "items", Key: "a"})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !got.Found || string(got.Value) != "one" || got.Ttl != nil {
		t.Fatalf("Get = found %v value %q ttl %v, want found \"one\" and no ttl", got.Found, got.Value, got.Ttl)
	}

	// A second Set replaces the value.
	if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "items", Key: "a", Value: []byte("two")}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, _ := c.Get(ctx, &cachev1.GetRequest{Cache: "items", Key: "a"}); string(got.GetValue()) != "two" {
		t.Fatalf("after replace Get = %q, want \"two\"", got.GetValue())
	}

	for i, want := range []bool{true, false} {
		del, err := c.Delete(ctx, &cachev1.DeleteRequest{Cache: "items", Key: "a"})
		if err != nil {
			t.Fatalf("Delete %d: %v", i, err)
		}
		if del.Deleted != want {
			t.Fatalf("Delete %d: deleted = %v, want %v", i, del.Deleted, want)
		}
	}
	if got, _ := c.Get(ctx, &cachev1.GetRequest{Cache: "items", Key: "a"}); got.GetFound() {
		t.Fatal("Get after Delete found the entry")
	}
}

func TestTTL(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, testConfig(t), clock)
	c := dial(t, ts.addr)
	ctx := testCtx(t)

	set := func(key string, ttl *durationpb.Duration) {
		t.Helper()
		if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "ttl", Key: key, Value: []byte(key), Ttl: ttl}); err != nil {
			t.Fatalf("Set %s: %v", key, err)
		}
	}
	set("default", nil)
	set("zero", durationpb.New(0))
	set("short", durationpb.New(10*time.Second))

	ttlOf := func(key string) (time.Duration, bool) {
		t.Helper()
		got, err := c.Get(ctx, &cachev1.GetRequest{Cache: "ttl", Key: key})
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		return got.GetTtl().AsDuration(), got.GetFound()
	}
	tests := []struct {
		advance time.Duration
		key     string
		found   bool
		ttl     time.Duration
	}{
		{0, "default", true, time.Minute},
		{0, "zero", true, time.Minute},
		{0, "short", true, 10 * time.Second},
		{11 * time.Second, "short", false, 0},
		{0, "default", true, 49 * time.Second},
		{50 * time.Second, "default", false, 0},
		{0, "zero", false, 0},
	}
	for i, tt := range tests {
		clock.Advance(tt.advance)
		ttl, found := ttlOf(tt.key)
		if found != tt.found || ttl != tt.ttl {
			t.Errorf("step %d: %s = found %v ttl %v, want found %v ttl %v", i, tt.key, found, ttl, tt.found, tt.ttl)
		}
	}
}

func TestBatch(t *testing.T) {
	ts := startServer(t, testConfig(t), nil)
	c := dial(t, ts.addr)
	ctx := testCtx(t)

	_, err := c.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: "items", Entries: []*cachev1.Entry{
		{Key: "a", Value: []byte("A")},
		{Key: "b", Value: []byte("B"), Ttl: durationpb.New(time.Minute)},
		{Key: "c", Value: []byte("C")},
	}})
	if err != nil {
		t.Fatalf("BatchSet: %v", err)
	}

	keys := []string{"c", "missing", "a", "b", "a"}
	resp, err := c.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: "items", Keys: keys})
	if err != nil {
		t.Fatalf("BatchGet: %v", err)
	}
	want := []string{"C", "", "A", "B", "A"}
	if len(resp.Items) != len(keys) {
		t.Fatalf("BatchGet returned %d items for %d keys", len(resp.Items), len(keys))
	}
	for i, it := range resp.Items {
		if it.Found != (want[i] != "") || string(it.Value) != want[i] {
			t.Errorf("item %d (%s) = found %v %q, want %q", i, keys[i], it.Found, it.Value, want[i])
		}
	}
	if ttl := resp.Items[3].GetTtl().AsDuration(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("b's ttl = %v, want in (0, 1m]", ttl)
	}

	empty, err := c.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: "items"})
	if err != nil || len(empty.Items) != 0 {
		t.Fatalf("empty BatchGet = %d items, %v; want 0, nil", len(empty.GetItems()), err)
	}
}

func TestStats(t *testing.T) {
	ts := startServer(t, testConfig(t), nil)
	c := dial(t, ts.addr)
	ctx := testCtx(t)

	for _, k := range []string{"a", "b", "c"} {
		if _, err := c.Set(ctx, &cachev1.SetRequest{Cache: "tiny", Key: k, Value: []byte(k)}); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}
	for _, k := range []string{"a", "b", "c", "c"} { // a was evicted first
		if _, err := c.Get(ctx, &cachev1.GetRequest{Cache: "tiny", Key: k}); err != nil {
			t.Fatalf("Get %s: %v", k, err)
		}
	}

	st, err := c.Stats(ctx, &cachev1.StatsRequest{Cache: "tiny"})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := &cachev1.StatsResponse{
		Cache: "tiny", Policy: "fifo", Hits: 3, Misses: 1, Evictions: 1,
		HitRatio: 0.75, Entries: 2, MaxEntries: 2,
	}
	st.Bytes = 0 // counted by the store, checked there
	if !proto.Equal(st, want) {
		t.Fatalf("Stats =\n%v\nwant\n%v", st, want)
	}
}

// badCall is one request that must fail with code.
type badCall struct {
	name string
	call func(context.Context, cachev1.CacheServiceClient) error
	code codes.Code
}

func badCalls() []badCall {
	long := strings.Repeat("k", 65)
	bigValue := make([]byte, 8<<10+1)
	overCache := make([]byte, 4<<10) // under the value limit, over small's entry share
	get := func(cache, key string) func(context.Context, cachev1.CacheServiceClient) error {
		return func(ctx context.Context, c cachev1.CacheServiceClient) error {
			_, err := c.Get(ctx, &cachev1.GetRequest{Cache: cache, Key: key})
			return err
		}
	}
	set := func(req *cachev1.SetRequest) func(context.Context, cachev1.CacheServiceClient) error {
		return func(ctx context.Context, c cachev1.CacheServiceClient) error {
			_, err := c.Set(ctx, req)
			return err
		}
	}
	batchSet := func(entries []*cachev1.Entry) func(context.Context, cachev1.CacheServiceClient) error {
		return func(ctx context.Context, c cachev1.CacheServiceClient) error {
			_, err := c.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: "items", Entries: entries})
			return err
		}
	}
	batchGet := func(keys []string) func(context.Context, cachev1.CacheServiceClient) error {
		return func(ctx context.Context, c cachev1.CacheServiceClient) error {
			_, err := c.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: "items", Keys: keys})
			return err
		}
	}

	return []badCall{
		{"get unknown cache", get("nope", "k"), codes.NotFound},
		{"get empty cache name", get("", "k"), codes.InvalidArgument},
		{"get empty key", get("items", ""), codes.InvalidArgument},
		{"get long key", get("items", long), codes.InvalidArgument},
		{"set unknown cache", set(&cachev1.SetRequest{Cache: "nope", Key: "k"}), codes.NotFound},
		{"set empty key", set(&cachev1.SetRequest{Cache: "items"}), codes.InvalidArgument},
		{"set long key", set(&cachev1.SetRequest{Cache: "items", Key: long}), codes.InvalidArgument},
		{"set value over limit", set(&cachev1.SetRequest{Cache: "items", Key: "k", Value: bigValue}), codes.InvalidArgument},
		{"set value over cache bytes", set(&cachev1.SetRequest{Cache: "small", Key: "k", Value: overCache}), codes.InvalidArgument},
		{"set negative ttl", set(&cachev1.SetRequest{Cache: "items", Key: "k", Ttl: durationpb.New(-time.Second)}), codes.InvalidArgument},
		{"set ttl over max", set(&cachev1.SetRequest{Cache: "items", Key: "k", Ttl: durationpb.New(2 * time.Hour)}), codes.InvalidArgument},
		{"set malformed ttl", set(&cachev1.SetRequest{Cache: "items", Key: "k", Ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}}), codes.InvalidArgument},
		{"delete empty key", func(ctx context.Context, c cachev1.CacheServiceClient) error {
			_, err := c.Delete(ctx, &cachev1.DeleteRequest{Cache: "items"})
			return err
		}, codes.InvalidArgument},
		{"delete unknown cache", func(ctx context.Context, c cachev1.CacheServiceClient) error {
			_, err := c.Delete(ctx, &cachev1.DeleteRequest{Cache: "nope", Key: "k"})
			return err
		}, codes.NotFound},
		{"batch get too long", batchGet(make([]string, 101)), codes.InvalidArgument},
		{"batch get empty key", batchGet([]string{"a", "", "b"}), codes.InvalidArgument},
		{"batch set too long", batchSet(make([]*cachev1.Entry, 101)), codes.InvalidArgument},
		{"batch set bad last entry", batchSet([]*cachev1.Entry{
			{Key: "batch-a", Value: []byte("a")}, {Key: "batch-b", Value: []byte("b")},
			{Key: "batch-c", Ttl: durationpb.New(-time.Second)},
		}), codes.InvalidArgument},
		{"batch set over request size", batchSet(func() []*cachev1.Entry {
			var es []*cachev1.Entry
			for i := range 10 {
				es = append(es, &cachev1.Entry{Key: fmt.Sprintf("batch-big-%d", i), Value: make([]byte, 8<<10)})
			}
			return es
		}()), codes.ResourceExhausted},
		{"stats unknown cache", func(ctx context.Context, c cachev1.CacheServiceClient) error {
			_, err := c.Stats(ctx, &cachev1.StatsRequest{Cache: "nope"})
			return err
		}, codes.NotFound},
		{"watch unknown cache", func(ctx context.Context, c cachev1.CacheServiceClient) error {
			s, err := c.Watch(ctx, &cachev1.WatchRequest{Cache: "nope"})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.NotFound},
	}
}

func TestBadInput(t *testing.T) {
	ts := startServer(t, testConfig(t), nil)
	c := dial(t, ts.addr)
	ctx := testCtx(t)

	for _, tt := range badCalls() {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctx, c)
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code = %v (%q), want %v", st.Code(), st.Message(), tt.code)
			}
			if strings.Contains(strings.ToLower(st.Message()), "store:") {
				t.Fatalf("message %q leaks internal text", st.Message())
			}
		})
	}

	// Nothing of the refused batches was stored.
	for _, k := range []string{"batch-a", "batch-b", "batch-big-0"} {
		got, err := c.Get(ctx, &cachev1.GetRequest{Cache: "items", Key: k})
		if err != nil || got.Found {
			t.Errorf("Get %s after refused batch = found %v, %v; want a miss", k, got.GetFound(), err)
		}
	}
	st, err := c.Stats(ctx, &cachev1.StatsRequest{Cache: "items"})
	if err != nil || st.Entries != 0 {
		t.Errorf("items holds %d entries after only refused writes (%v)", st.GetEntries(), err)
	}
}

// A value that fits the value limit and the cache's byte limit is stored;
// this pins the boundary that "set value over cache bytes" is refused at.
func TestEntryAtCacheLimit(t *testing.T) {
	ts := startServer(t, testConfig(t), nil)
	c := dial(t, ts.addr)
	ctx := testCtx(t)

	limit := ts.svc.caches.get("small").maxEntryBytes()
	for _, tt := range []struct {
		size int64
		code codes.Code
	}{{limit - 1, codes.OK}, {limit, codes.OK}, {limit + 1, codes.InvalidArgument}} {
		value := bytes.Repeat([]byte("v"), int(tt.size)-1)
		_, err := c.Set(ctx, &cachev1.SetRequest{Cache: "small", Key: "k", Value: value})
		if got := status.Code(err); got != tt.code {
			t.Errorf("entry of %d bytes (limit %d): code %v, want %v", tt.size, limit, got, tt.code)
		}
	}
}

func TestCredential(t *testing.T) {
	cfg := testConfig(t)
	cfg.Credential = "s3cret"
	ts := startServer(t, cfg, nil)
	ctx := testCtx(t)

	req := &cachev1.GetRequest{Cache: "items", Key: "k"}
	if _, err := dial(t, ts.addr).Get(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Get without credential: %v, want Unauthenticated", err)
	}
	withCred := dial(t, ts.addr, grpc.WithPerRPCCredentials(bearer("s3cret")))
	if _, err := withCred.Get(ctx, req); err != nil {
		t.Fatalf("Get with credential: %v", err)
	}
	t.Setenv("CACHE_GRPC_ADDR", ts.addr)
	if err := run(ctx, []string{"healthcheck"}); err != nil {
		t.Fatalf("health check needs no credential, but: %v", err)
	}
}

// bearer sends a credential over plaintext, for tests.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
