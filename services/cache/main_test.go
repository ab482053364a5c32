package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchboard/libs/logging"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a store.Clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testConfig has small caches and limits that tests can reach:
//   - items: lru, 100 entries, no TTL, 1MiB
//   - ttl:   lru, 100 entries, default TTL 1m
//   - tiny:  fifo, 2 entries
//   - small: lru, 4KiB of bytes only
//   - wide:  lru, 64MiB of bytes only, for watch storms
func testConfig(t testing.TB) Config {
	t.Helper()
	specs := []string{
		"items:lru:100:0:1MiB", "ttl:lru:100:1m:0", "tiny:fifo:2:0:0",
		"small:lru:0:0:4KiB", "wide:lru:0:0:64MiB",
	}
	var caches []CacheSpec
	for _, s := range specs {
		spec, err := parseCacheSpec(s)
		if err != nil {
			t.Fatalf("test cache %q: %v", s, err)
		}
		caches = append(caches, spec)
	}
	return Config{
		GRPCAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Caches:   caches,
		Grace:    5 * time.Second,
		Limits: Limits{
			MaxKeyBytes:     64,
			MaxValueBytes:   8 << 10,
			MaxBatch:        100,
			MaxTTL:          time.Hour,
			MaxRequestBytes: 64 << 10,
			WatchBuffer:     4,
			MaxWatchers:     2,
		},
	}
}

// testServer is one service on real loopback listeners.
type testServer struct {
	svc      *service
	addr     string // gRPC
	httpAddr string
	stop     func() error // cancels serve and returns its error
}

func startServer(t testing.TB, cfg Config, clock *fakeClock) *testServer {
	t.Helper()
	var svc *service
	var err error
	if clock != nil {
		svc, err = newService(cfg, logging.Discard(), clock)
	} else {
		svc, err = newService(cfg, logging.Discard(), nil)
	}
	if err != nil {
		t.Fatalf("newService: %v", err)
	}
	grpcLis, httpLis, err := listen(cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.serve(ctx, grpcLis, httpLis) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{svc: svc, addr: grpcLis.Addr().String(), httpAddr: httpLis.Addr().String(), stop: stop}
}

// dial returns a cache.v1 client closed at cleanup.
func dial(t testing.TB, addr string, opts ...grpc.DialOption) cachev1.CacheServiceClient {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return cachev1.NewCacheServiceClient(conn)
}

// testCtx is a context that ends with the test, and at most in 30 s.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
