package storebench

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"switchboard/libs/store"
)

// memEntries is the number of small entries of the memory measurement.
const memEntries = 1_000_000

// MemoryResult compares what the store accounts with what the heap grew.
type MemoryResult struct {
	Entries    int
	Accounted  int64  // Stats().Bytes
	HeapGrowth uint64 // HeapAlloc after GC, filled minus empty
}

// MeasureMemory fills a store with memEntries entries of a keyLen-byte
// string key and a valueLen-byte value and compares Stats().Bytes with
// the growth of the live heap. The keys and values are built inside the
// measured span: the store is charged for them.
func MeasureMemory(p store.Policy, shards, keyLen, valueLen int) MemoryResult {
	before := liveHeap()
	s, err := store.New(store.Options[string, []byte]{
		Policy: p, MaxEntries: memEntries, MaxBytes: 1 << 40,
		Size: store.StringBytesSize, Shards: shards, ReclaimInterval: -1,
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for i := range memEntries {
		k := strconv.Itoa(i)
		k += string(make([]byte, keyLen-len(k)))
		if err := s.Set(k, make([]byte, valueLen)); err != nil {
			panic(err)
		}
	}
	after := liveHeap()
	st := s.Stats()
	runtime.KeepAlive(s)
	return MemoryResult{Entries: st.Entries, Accounted: st.Bytes, HeapGrowth: after - before}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemory reports, for a million entries with 16-byte keys and
// 32-byte values, heap growth per entry and the ratio of heap growth to
// accounted bytes (1.0 is exact).
func BenchmarkMemory(b *testing.B) {
	for _, p := range []store.Policy{store.TinyLFU, store.LRU, store.LFU} {
		for _, shards := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/shards=%d", p, shards), func(b *testing.B) {
				var r MemoryResult
				for range b.N {
					r = MeasureMemory(p, shards, 16, 32)
				}
				b.ReportMetric(float64(r.HeapGrowth)/float64(r.Entries), "heap-B/entry")
				b.ReportMetric(float64(r.Accounted)/float64(r.Entries), "accounted-B/entry")
				b.ReportMetric(float64(r.HeapGrowth)/float64(r.Accounted), "heap/accounted")
			})
		}
	}
}
