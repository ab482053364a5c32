package storebench

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"

	"switchboard/libs/store"
)

// Throughput set-up: a cache of benchCapacity entries, keys drawn from a
// Zipf(benchSkew) distribution over benchKeyspace keys, so that writes
// evict.
const (
	benchCapacity = 1 << 14
	benchKeyspace = 1 << 20
	benchKeys     = 1 << 20 // length of the precomputed key sequence
	benchSkew     = 0.99
)

// benchCache is the surface the throughput benchmarks drive.
type benchCache interface {
	Get(k string) bool
	Set(k string, v []byte)
	Close()
}

type storeCache struct{ s *store.Store[string, []byte] }

func (c storeCache) Get(k string) bool      { _, ok := c.s.Get(k); return ok }
func (c storeCache) Set(k string, v []byte) { _ = c.s.Set(k, v) }
func (c storeCache) Close()                 { c.s.Close() }

type otterCache struct{ c *otter.Cache[string, []byte] }

func (c otterCache) Get(k string) bool      { _, ok := c.c.GetIfPresent(k); return ok }
func (c otterCache) Set(k string, v []byte) { c.c.Set(k, v) }
func (c otterCache) Close()                 { c.c.StopAllGoroutines() }

type ristrettoCache struct {
	c *ristretto.Cache[string, []byte]
}

func (c ristrettoCache) Get(k string) bool      { _, ok := c.c.Get(k); return ok }
func (c ristrettoCache) Set(k string, v []byte) { c.c.Set(k, v, 1) }
func (c ristrettoCache) Close()                 { c.c.Close() }

var benchCaches = []struct {
	name string
	new  func() benchCache
}{
	{"store", func() benchCache {
		s, err := store.New(store.Options[string, []byte]{MaxEntries: benchCapacity})
		if err != nil {
			panic(err)
		}
		return storeCache{s}
	}},
	{"otter", func() benchCache {
		return otterCache{otter.Must(&otter.Options[string, []byte]{MaximumSize: benchCapacity})}
	}},
	// otter counts hits and misses only with a StatsRecorder; the store
	// always counts them, so this is the like-for-like contender.
	{"otter-stats", func() benchCache {
		return otterCache{otter.Must(&otter.Options[string, []byte]{
			MaximumSize: benchCapacity, StatsRecorder: stats.NewCounter(),
		})}
	}},
	{"ristretto", func() benchCache {
		c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
			NumCounters: 10 * benchCapacity, MaxCost: benchCapacity, BufferItems: 64,
		})
		if err != nil {
			panic(err)
		}
		return ristrettoCache{c}
	}},
}

// benchKeySeq returns the shared Zipf key sequence, built on first use.
var benchKeySeq = sync.OnceValue(func() []string {
	z := NewZipf(benchKeyspace, benchSkew, 42)
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "key:" + strconv.FormatUint(z.Next(), 10)
	}
	return keys
})

// BenchmarkThroughput drives each cache from GOMAXPROCS goroutines (run
// with -cpu 1,2) with a mix of reads and writes: reads=100 is all Get,
// reads=75 is 75% Get and 25% Set, reads=0 is all Set (evicting). The
// cache is filled from the key sequence first.
func BenchmarkThroughput(b *testing.B) {
	value := make([]byte, 16)
	seq := benchKeySeq()
	for _, reads := range []int{100, 75, 0} {
		for _, bc := range benchCaches {
			b.Run(fmt.Sprintf("reads=%d/%s", reads, bc.name), func(b *testing.B) {
				c := bc.new()
				defer c.Close()
				for _, k := range seq[:4*benchCapacity] {
					c.Set(k, value)
				}
				var seed atomic.Uint64
				b.ReportAllocs()
				b.ResetTimer()
				cpu := CPUTime()
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1)*7919*1013) % benchKeys
					n := 0
					for pb.Next() {
						k := seq[i]
						i = (i + 1) & (benchKeys - 1)
						if n%100 < reads {
							c.Get(k)
						} else {
							c.Set(k, value)
						}
						n++
					}
				})
				b.ReportMetric(float64(CPUTime()-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
	runtime.GC()
}
