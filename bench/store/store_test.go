package storebench

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// ristretto's and otter's own background goroutines may still be
		// winding down after Close when the benchmarks end.
		goleak.IgnoreAnyFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
		goleak.IgnoreAnyFunction("github.com/dgraph-io/ristretto/v2.(*Cache[...]).processItems"),
	)
}

func TestBeladyHandMade(t *testing.T) {
	tests := []struct {
		name string
		keys []uint64
		size int
		hits int
	}{
		// Cache 2, a b c a b: the optimum keeps a and b, declining c.
		{"declines the furthest newcomer", []uint64{1, 2, 3, 1, 2}, 2, 2},
		// a b c b a: at c, a is used at 4 and b at 3; c never again.
		{"bypasses a key never used again", []uint64{1, 2, 3, 2, 1}, 2, 2},
		// a b c a c b, size 2: at c (2) evict b (next at 5) keep a (3):
		// a hit, c hit, b miss.
		{"evicts the furthest next use", []uint64{1, 2, 3, 1, 3, 2}, 2, 2},
		{"size zero never hits", []uint64{1, 1, 1}, 0, 0},
		{"all fit", []uint64{1, 2, 1, 2, 3, 3}, 3, 3},
		// The textbook example: 7 0 1 2 0 3 0 4 2 3 0 3 2 with 3 frames
		// has 6 misses under OPT with demand paging (7 hits); declining
		// a newcomer never hurts, so at least 7 hits.
		{"textbook reference string", []uint64{7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2}, 3, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Belady(tt.keys, tt.size); got != tt.hits {
				t.Errorf("Belady = %d hits, want %d", got, tt.hits)
			}
		})
	}
}

func TestBeladyBoundsEveryPolicy(t *testing.T) {
	tr := ZipfTrace(20_000, 0.9, 7)
	for _, size := range []int{50, 500} {
		opt := float64(Belady(tr.Keys, size)) / float64(len(tr.Keys))
		for _, spec := range StandardSims() {
			if spec.Name == OtterSim.Name {
				continue // otter may exceed its size while it catches up
			}
			if r := HitRatio(spec, tr.Keys, size); r > opt {
				t.Errorf("size %d: %s hit ratio %.4f beats the optimum %.4f", size, spec.Name, r, opt)
			}
		}
	}
}

func TestZipfDeterministicAndSkewed(t *testing.T) {
	a, b := NewZipf(1000, 0.9, 3), NewZipf(1000, 0.9, 3)
	counts := make([]int, 1000)
	for range 100_000 {
		x, y := a.Next(), b.Next()
		if x != y {
			t.Fatal("same seed, different sequences")
		}
		counts[x]++
	}
	if counts[0] <= counts[10] || counts[10] <= counts[900] {
		t.Errorf("not skewed: rank 0 %d, rank 10 %d, rank 900 %d", counts[0], counts[10], counts[900])
	}
}

func TestTraces(t *testing.T) {
	for _, tr := range StandardTraces(10_000, 1) {
		if len(tr.Keys) != 10_000 {
			t.Errorf("%s: %d keys", tr.Name, len(tr.Keys))
		}
	}
	again := StandardTraces(10_000, 1)
	for i, tr := range StandardTraces(10_000, 1) {
		for j := range tr.Keys {
			if tr.Keys[j] != again[i].Keys[j] {
				t.Fatalf("%s differs between two generations", tr.Name)
			}
		}
	}
}
