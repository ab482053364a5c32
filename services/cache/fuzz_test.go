package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// The fuzz targets of this file check what a client or an operator hands
// the cache service: requests (through the api's handlers, without the
// network, so that one run tries many) and CACHE_CACHES. Plain `go test`
// runs their seeds; `make fuzz` searches for new inputs.

// The operations FuzzRequests picks from.
const (
	opSet = iota
	opBatchSet
	opGet
	opBatchGet
	opDelete
	opCount
)

// newFuzzAPI is the api of testConfig's caches on a clock that stands
// still, so that no entry expires between a Set and the Get that checks it.
func newFuzzAPI(t testing.TB) *api {
	t.Helper()
	cfg := testConfig(t)
	cs, err := newCaches(cfg.Caches, newFakeClock())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cs.close)
	return &api{caches: cs, limits: cfg.Limits, log: logging.Discard(), stopping: make(chan struct{})}
}

// fuzzRequest is one request FuzzRequests builds from its arguments.
type fuzzRequest struct {
	op      int
	cache   string
	keys    []string // one for Set, Get and Delete
	value   []byte
	ttl     *durationpb.Duration
	touched []string // the keys whose entries the call may change
}

// newFuzzRequest spreads the fuzzer's arguments over a request: key holds
// the keys of a batch separated by commas, and extra adds as many more
// keys, so that batches can pass the batch limit.
func newFuzzRequest(op uint8, cache, key string, value []byte, ttlSec int64, ttlNanos int32, withTTL bool, extra uint8) fuzzRequest {
	r := fuzzRequest{op: int(op) % opCount, cache: cache, value: bytes.Clone(value)}
	if withTTL {
		r.ttl = &durationpb.Duration{Seconds: ttlSec, Nanos: ttlNanos}
	}
	r.keys = []string{key}
	if r.op == opBatchSet || r.op == opBatchGet {
		r.keys = strings.Split(key, ",")
		for i := range int(extra) {
			r.keys = append(r.keys, fmt.Sprintf("%s#%d", r.keys[0], i))
		}
	}
	if r.op == opSet || r.op == opBatchSet || r.op == opDelete {
		r.touched = r.keys
	}
	return r
}

// call sends r to a.
func (r fuzzRequest) call(ctx context.Context, a *api) (any, error) {
	switch r.op {
	case opSet:
		return a.Set(ctx, &cachev1.SetRequest{Cache: r.cache, Key: r.keys[0], Value: r.value, Ttl: r.ttl})
	case opBatchSet:
		entries := make([]*cachev1.Entry, len(r.keys))
		for i, k := range r.keys {
			entries[i] = &cachev1.Entry{Key: k, Value: r.value, Ttl: r.ttl}
		}
		return a.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: r.cache, Entries: entries})
	case opGet:
		return a.Get(ctx, &cachev1.GetRequest{Cache: r.cache, Key: r.keys[0]})
	case opBatchGet:
		return a.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: r.cache, Keys: r.keys})
	}
	return a.Delete(ctx, &cachev1.DeleteRequest{Cache: r.cache, Key: r.keys[0]})
}

// cacheState is what a refused request must leave as it was.
type cacheState struct {
	entries int
	bytes   int64
	values  map[string][]byte // touched key -> value, nil when absent
}

func stateOf(c *cache, keys []string) cacheState {
	st := c.store.Stats()
	s := cacheState{entries: st.Entries, bytes: st.Bytes, values: make(map[string][]byte, len(keys))}
	for _, k := range keys {
		v, ok := c.store.Get(k)
		if ok && v == nil {
			v = []byte{}
		}
		s.values[k] = v
	}
	return s
}

func (s cacheState) equal(o cacheState) bool {
	if s.entries != o.entries || s.bytes != o.bytes || len(s.values) != len(o.values) {
		return false
	}
	for k, v := range s.values {
		w, ok := o.values[k]
		if !ok || (v == nil) != (w == nil) || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// FuzzRequests: no request panics or earns INTERNAL; a refused request is
// INVALID_ARGUMENT or NOT_FOUND and changes nothing; an accepted Set or
// BatchSet can be read back; a BatchGet answers every key.
func FuzzRequests(f *testing.F) {
	long := strings.Repeat("k", 65)
	for _, s := range []struct {
		op       uint8
		cache    string
		key      string
		value    []byte
		sec      int64
		nanos    int32
		withTTL  bool
		extraKey uint8
	}{
		{opSet, "items", "k", []byte("v"), 0, 0, false, 0},
		{opSet, "items", "k", []byte("v"), 60, 0, true, 0},
		{opSet, "items", "k", nil, 1, -1, true, 0},
		{opSet, "items", "k", nil, -1, 0, true, 0},
		{opSet, "items", "k", nil, 1 << 62, 0, true, 0},
		{opSet, "ttl", "ключ", []byte("значение"), 0, 999_999_999, true, 0},
		{opSet, "small", "k", make([]byte, 4<<10), 0, 0, false, 0},
		{opSet, "tiny", "\x00\xff", []byte{0}, 0, 0, false, 0},
		{opSet, "nope", "k", nil, 0, 0, false, 0},
		{opSet, "", "k", nil, 0, 0, false, 0},
		{opSet, "items", long, nil, 0, 0, false, 0},
		{opSet, "items", "", nil, 0, 0, false, 0},
		{opBatchSet, "items", "a,b,c", []byte("v"), 0, 0, false, 0},
		{opBatchSet, "items", "a,,c", []byte("v"), 0, 0, false, 0},
		{opBatchSet, "items", "a", []byte("v"), 0, 0, false, 100},
		{opBatchSet, "tiny", "a,a,b", []byte("v"), 0, 0, false, 3},
		{opBatchGet, "items", "a,b,🙂", nil, 0, 0, false, 0},
		{opBatchGet, "items", "a", nil, 0, 0, false, 120},
		{opGet, "items", "k", nil, 0, 0, false, 0},
		{opDelete, "items", "k", nil, 0, 0, false, 0},
		{opDelete, "wide", long, nil, 0, 0, false, 0},
	} {
		f.Add(s.op, s.cache, s.key, s.value, s.sec, s.nanos, s.withTTL, s.extraKey)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, op uint8, cacheName, key string, value []byte, ttlSec int64, ttlNanos int32, withTTL bool, extra uint8) {
		r := newFuzzRequest(op, cacheName, key, value, ttlSec, ttlNanos, withTTL, extra)
		c := a.caches.get(r.cache)
		var before cacheState
		if c != nil {
			before = stateOf(c, r.touched)
		}
		resp, err := r.call(context.Background(), a)
		if err != nil {
			checkRefused(t, err, c, before, r)
			return
		}
		checkAccepted(t, c, r, resp)
	})
}

func checkRefused(t *testing.T, err error, c *cache, before cacheState, r fuzzRequest) {
	t.Helper()
	if code := status.Code(err); code != codes.InvalidArgument && code != codes.NotFound {
		t.Fatalf("refused with %v, want INVALID_ARGUMENT or NOT_FOUND", err)
	}
	if c == nil {
		return
	}
	if after := stateOf(c, r.touched); !before.equal(after) {
		t.Fatalf("a refused request changed the cache: %+v, then %+v", before, after)
	}
}

func checkAccepted(t *testing.T, c *cache, r fuzzRequest, resp any) {
	t.Helper()
	if c == nil {
		t.Fatalf("accepted a call on unknown cache %q", r.cache)
	}
	switch r.op {
	case opSet, opBatchSet:
		last := r.keys[len(r.keys)-1]
		v, ok := c.store.Get(last)
		if !ok || !bytes.Equal(v, r.value) {
			t.Fatalf("an accepted set of %q cannot be read back (found %v)", last, ok)
		}
	case opBatchGet:
		if n := len(resp.(*cachev1.BatchGetResponse).GetItems()); n != len(r.keys) {
			t.Fatalf("BatchGet of %d keys answered %d items", len(r.keys), n)
		}
	}
}

// FuzzCachesConfig: CACHE_CACHES never panics the parser; a refusal names
// the variable; an accepted list holds 1 to 64 caches of unique, plain
// names, each with a limit, each written back by String to the same spec.
func FuzzCachesConfig(f *testing.F) {
	for _, s := range []string{
		"users:lru:200:5m:2MiB",
		"a:lru:1:0:0,b:fifo:0:1h:1KiB,c:lfu:10:0:0,d:tinylfu:10:0:0",
		"users:lru:0:0:0", "users:LRU:1:0:0", " users : lru : 1 : 0 : 0 ",
		"users:lru:200:5m:2MiB,users:lfu:1:0:0", "::::", ",,,", "",
		"ユーザー:lru:1:0:0", "users:lru:-1:0:0", "users:lru:1:-5m:0",
		"users:lru:1:0:1KiB:extra", "users:lru:1:1e9h:0", "users:lru:99999999999999999999:0:0",
		"users:lru:1:0:1023B", "users:lru:1:0:65GiB", "-a:lru:1:0:0",
		strings.Repeat("x", 65) + ":lru:1:0:0",
		strings.Repeat("a:lru:1:0:0,", 65),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		cfg, err := loadConfig(config.New(config.Map(map[string]string{"CACHE_CACHES": list})))
		if err != nil {
			if !strings.Contains(err.Error(), "CACHE_CACHES") {
				t.Fatalf("refusal does not name CACHE_CACHES: %v", err)
			}
			return
		}
		checkSpecs(t, cfg.Caches)
	})
}

func checkSpecs(t *testing.T, specs []CacheSpec) {
	t.Helper()
	if len(specs) == 0 || len(specs) > maxCaches {
		t.Fatalf("accepted %d caches", len(specs))
	}
	var names []string
	for _, s := range specs {
		if _, err := parseCacheName(s.Name); err != nil || slices.Contains(names, s.Name) {
			t.Fatalf("accepted name %q (%v), or twice", s.Name, err)
		}
		names = append(names, s.Name)
		if s.MaxEntries == 0 && s.MaxBytes == 0 {
			t.Fatalf("accepted cache %q without a limit", s.Name)
		}
		again, err := parseCacheSpec(s.String())
		if err != nil || again != s {
			t.Fatalf("spec %+v is written %q, which reads as %+v, %v", s, s.String(), again, err)
		}
	}
}
