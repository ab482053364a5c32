package storebench

import (
	"fmt"
	"math/rand/v2"
)

// Trace is a named sequence of keys.
type Trace struct {
	Name string
	Keys []uint64
}

// keyspace is the number of distinct keys of the Zipf part of a trace.
const keyspace = 100_000

// ZipfTrace returns n draws from a Zipf distribution of skew s over
// keyspace keys.
func ZipfTrace(n int, s float64, seed uint64) Trace {
	z := NewZipf(keyspace, s, seed)
	keys := make([]uint64, n)
	for i := range keys {
		keys[i] = z.Next()
	}
	return Trace{Name: fmt.Sprintf("zipf-%.1f", s), Keys: keys}
}

// LoopTrace mixes recency into a Zipf(0.9) trace: each request is, with
// even odds, the next key of a loop cycling over loop keys of their own,
// or a Zipf draw. A loop longer than the cache defeats LRU; a
// frequency-aware policy keeps part of it.
func LoopTrace(n, loop int, seed uint64) Trace {
	z := NewZipf(keyspace, 0.9, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	keys := make([]uint64, n)
	pos := 0
	for i := range keys {
		if rng.IntN(2) == 0 {
			keys[i] = keyspace + uint64(pos)
			pos = (pos + 1) % loop
			continue
		}
		keys[i] = z.Next()
	}
	return Trace{Name: fmt.Sprintf("loop%d+zipf", loop), Keys: keys}
}

// ScanTrace interrupts a Zipf(0.9) trace with scans: after every period
// requests comes a burst of scan keys each used once, never seen again.
func ScanTrace(n, period, scan int, seed uint64) Trace {
	z := NewZipf(keyspace, 0.9, seed)
	keys := make([]uint64, 0, n)
	next := uint64(1 << 40) // scan keys never repeat
	for len(keys) < n {
		for i := 0; i < period && len(keys) < n; i++ {
			keys = append(keys, z.Next())
		}
		for i := 0; i < scan && len(keys) < n; i++ {
			keys = append(keys, next)
			next++
		}
	}
	return Trace{Name: fmt.Sprintf("scan%d+zipf", scan), Keys: keys}
}

// StandardTraces are the traces of docs/benchmarks.md, n requests each.
func StandardTraces(n int, seed uint64) []Trace {
	return []Trace{
		ZipfTrace(n, 0.7, seed),
		ZipfTrace(n, 0.9, seed+1),
		ZipfTrace(n, 1.1, seed+2),
		LoopTrace(n, 5000, seed+3),
		ScanTrace(n, 50_000, 20_000, seed+4),
	}
}
