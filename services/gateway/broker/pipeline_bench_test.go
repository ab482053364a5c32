package broker

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkRedisPublish runs the publish script from 32 goroutines at
// once over 200 rooms, each publish a command of its own ("alone") or
// through the pipeline ("pipelined"). Besides the wall time per publish
// it reports the CPU per publish of this process (the replica's side) and
// of redis-server (from INFO cpu).
//
//	go test -run '^$' -bench RedisPublish ./broker/
func BenchmarkRedisPublish(b *testing.B) {
	for _, pipelined := range []bool{false, true} {
		name := "alone"
		if pipelined {
			name = "pipelined"
		}
		b.Run(name, func(b *testing.B) {
			h, c, _ := newHistory(b)
			if !pipelined {
				h.pipeline = nil
			}
			ctx := context.Background()
			data := []byte(`{"text":"` + strings.Repeat("x", 80) + `"}`)
			var next atomic.Int64
			redis0, self0 := redisCPU(b, c), selfCPU()
			b.SetParallelism(16) // 32 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					room := "conversation:" + strconv.Itoa(int(next.Add(1)%200))
					if _, _, _, err := h.Publish(ctx, PublishArgs{Room: room, Data: data}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric((redisCPU(b, c)-redis0)*1e6/float64(b.N), "redis-cpu-µs/op")
			b.ReportMetric((selfCPU()-self0)*1e6/float64(b.N), "client-cpu-µs/op")
		})
	}
}

// redisCPU returns redis-server's user and system CPU seconds so far.
func redisCPU(tb testing.TB, c *redis.Client) float64 {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

// selfCPU returns this process's user and system CPU seconds so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
