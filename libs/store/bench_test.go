package store

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the CPU time this process has used: on a shared
// machine, CPU time per operation is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTinyLFUReadPath compares TinyLFU's two read paths on the same
// Zipf keys, run with -cpu 1,2: "locked" takes the shard's write lock and
// updates the policy on every Get (as LRU and LFU do); "buffered" takes
// the read lock and records the hit in the lossy read buffer (the
// default). It is the evidence for keeping the read buffer.
func BenchmarkTinyLFUReadPath(b *testing.B) {
	const capacity, keyspace, seqLen = 1 << 14, 1 << 18, 1 << 18
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.01, 1, keyspace-1)
	keys := make([]string, seqLen)
	for i := range keys {
		keys[i] = "key:" + strconv.FormatUint(z.Uint64(), 10)
	}
	for _, mode := range []struct {
		name  string
		reads readMode
	}{{"locked", readLocked}, {"buffered", readBuffered}} {
		for _, shards := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/shards=%d", mode.name, shards), func(b *testing.B) {
				s, err := New(Options[string, int]{MaxEntries: capacity, Shards: shards, ReclaimInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				for _, sh := range s.shards {
					sh.reads = mode.reads
				}
				for _, k := range keys[:4*capacity] {
					_ = s.Set(k, 1)
				}
				var seed atomic.Uint64
				b.ResetTimer()
				cpu := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1)*7919) % seqLen
					for pb.Next() {
						s.Get(keys[i])
						i = (i + 1) % seqLen
					}
				})
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
