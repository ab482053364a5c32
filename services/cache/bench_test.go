package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/redistest"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// The cache service against redis-server on the same machine, in the same
// run, at the same client concurrency. Each sub-benchmark reports keys/s:
// one key per unary call or unpipelined command, batchKeys per batch call,
// pipeDepth per pipeline. `make bench` runs them; docs/benchmarks.md has
// the figures.
const (
	benchClients = 64 // goroutines issuing calls at once, for both
	benchKeys    = 10_000
	benchValue   = 64 // bytes per value
	batchKeys    = 100
	pipeDepth    = 16
)

func benchKey(i int) string { return fmt.Sprintf("key:%05d", i%benchKeys) }

// parallel runs op from benchClients goroutines until b.N operations are
// done, and reports keys/s and the CPU time spent per key by this process
// plus serverCPU (nil when the server is in this process). The CPU figure
// depends far less than keys/s on what else the machine runs.
func parallel(b *testing.B, keysPerOp int, serverCPU func() time.Duration, op func(ctx context.Context, n int) error) {
	b.Helper()
	ctx := context.Background()
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var next atomic.Int64
	cpu := func() time.Duration {
		d := processCPU(b)
		if serverCPU != nil {
			d += serverCPU()
		}
		return d
	}
	b.ResetTimer()
	start := cpu()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(ctx, int(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	used := cpu() - start
	keys := float64(keysPerOp * b.N)
	b.ReportMetric(keys/b.Elapsed().Seconds(), "keys/s")
	b.ReportMetric(float64(used.Microseconds())/keys, "cpu-us/key")
}

// processCPU is the user and system time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the user and system time of redis-server so far, from INFO.
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatalf("redis INFO cpu: %v", err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_sys" || name == "used_cpu_user") {
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				b.Fatalf("redis INFO %s: %q", name, value)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

func BenchmarkCacheVsRedis(b *testing.B) {
	value := make([]byte, benchValue)
	b.Run("cache", func(b *testing.B) { benchCache(b, value) })
	b.Run("redis", func(b *testing.B) { benchRedis(b, value) })
}

func benchCache(b *testing.B, value []byte) {
	cfg := testConfig(b)
	spec, err := parseCacheSpec("bench:lru:0:0:256MiB")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Caches = []CacheSpec{spec}
	cfg.Limits.MaxBatch = 1000
	cfg.Limits.MaxRequestBytes = 16 << 20
	ts := startServer(b, cfg, nil)
	c := dial(b, ts.addr)
	fill(b, c, value)

	b.Run("unary-get", func(b *testing.B) {
		parallel(b, 1, nil, func(ctx context.Context, n int) error {
			resp, err := c.Get(ctx, &cachev1.GetRequest{Cache: "bench", Key: benchKey(n)})
			if err == nil && !resp.Found {
				err = fmt.Errorf("miss on %s", benchKey(n))
			}
			return err
		})
	})
	b.Run("unary-set", func(b *testing.B) {
		parallel(b, 1, nil, func(ctx context.Context, n int) error {
			_, err := c.Set(ctx, &cachev1.SetRequest{Cache: "bench", Key: benchKey(n), Value: value})
			return err
		})
	})
	b.Run(fmt.Sprintf("batch-get-%d", batchKeys), func(b *testing.B) {
		parallel(b, batchKeys, nil, func(ctx context.Context, n int) error {
			resp, err := c.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: "bench", Keys: batchOfKeys(n)})
			if err == nil && len(resp.Items) != batchKeys {
				err = fmt.Errorf("%d items", len(resp.Items))
			}
			return err
		})
	})
	b.Run(fmt.Sprintf("batch-set-%d", batchKeys), func(b *testing.B) {
		parallel(b, batchKeys, nil, func(ctx context.Context, n int) error {
			_, err := c.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: "bench", Entries: batchOfEntries(n, value)})
			return err
		})
	})
}

// fill stores every benchmark key, so that gets hit.
func fill(b *testing.B, c cachev1.CacheServiceClient, value []byte) {
	b.Helper()
	for n := 0; n < benchKeys/batchKeys; n++ {
		req := &cachev1.BatchSetRequest{Cache: "bench", Entries: batchOfEntries(n, value)}
		if _, err := c.BatchSet(context.Background(), req); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
}

// batchOfKeys returns the n-th run of batchKeys consecutive keys.
func batchOfKeys(n int) []string {
	keys := make([]string, batchKeys)
	for i := range keys {
		keys[i] = benchKey(n*batchKeys + i)
	}
	return keys
}

func batchOfEntries(n int, value []byte) []*cachev1.Entry {
	entries := make([]*cachev1.Entry, batchKeys)
	for i, k := range batchOfKeys(n) {
		entries[i] = &cachev1.Entry{Key: k, Value: value}
	}
	return entries
}

func benchRedis(b *testing.B, value []byte) {
	srv := redistest.Start(b)
	// A pool as large as the client count, so that no command waits for a
	// connection; the gRPC calls share one HTTP/2 connection, which
	// multiplexes them.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: benchClients})
	b.Cleanup(func() { rdb.Close() })
	for n := 0; n < benchKeys; n++ {
		if err := rdb.Set(context.Background(), benchKey(n), value, 0).Err(); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}

	server := func() time.Duration { return redisCPU(b, rdb) }
	b.Run("get", func(b *testing.B) {
		parallel(b, 1, server, func(ctx context.Context, n int) error {
			return rdb.Get(ctx, benchKey(n)).Err()
		})
	})
	b.Run("set", func(b *testing.B) {
		parallel(b, 1, server, func(ctx context.Context, n int) error {
			return rdb.Set(ctx, benchKey(n), value, 0).Err()
		})
	})
	b.Run(fmt.Sprintf("get-pipeline-%d", pipeDepth), func(b *testing.B) {
		parallel(b, pipeDepth, server, func(ctx context.Context, n int) error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range pipeDepth {
					p.Get(ctx, benchKey(n*pipeDepth+i))
				}
				return nil
			})
			return err
		})
	})
	b.Run(fmt.Sprintf("set-pipeline-%d", pipeDepth), func(b *testing.B) {
		parallel(b, pipeDepth, server, func(ctx context.Context, n int) error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range pipeDepth {
					p.Set(ctx, benchKey(n*pipeDepth+i), value, 0)
				}
				return nil
			})
			return err
		})
	})
}
