package storebench

import (
	"fmt"

	"github.com/maypok86/otter/v2"

	"switchboard/libs/store"
)

// Sim is a cache under replay.
type Sim interface {
	// Access reads key and, on a miss, stores it; it reports a hit.
	Access(key uint64) bool
	Close()
}

// SimSpec names a cache to replay and builds it for a size.
type SimSpec struct {
	Name string
	New  func(size int) Sim
}

// StoreSim returns a spec for libs/store with policy p and shards shards.
func StoreSim(p store.Policy, shards int) SimSpec {
	name := string(p)
	if shards > 1 {
		name = fmt.Sprintf("%s/%d", p, shards)
	}
	return SimSpec{Name: name, New: func(size int) Sim {
		s, err := store.New(store.Options[uint64, struct{}]{
			Policy: p, MaxEntries: size, Shards: min(shards, size),
			ReclaimInterval: -1,
		})
		if err != nil {
			panic(err)
		}
		return storeSim{s}
	}}
}

type storeSim struct {
	s *store.Store[uint64, struct{}]
}

func (s storeSim) Access(k uint64) bool {
	if _, ok := s.s.Get(k); ok {
		return true
	}
	_ = s.s.Set(k, struct{}{})
	return false
}

func (s storeSim) Close() { s.s.Close() }

// OtterSim is the spec for otter v2 with its defaults.
var OtterSim = SimSpec{Name: "otter", New: func(size int) Sim {
	// A synchronous executor runs otter's maintenance on the caller:
	// deterministic, and otter's best case for hit ratio.
	c := otter.Must(&otter.Options[uint64, struct{}]{
		MaximumSize: size,
		Executor:    func(fn func()) { fn() },
	})
	return otterSim{c}
}}

type otterSim struct {
	c *otter.Cache[uint64, struct{}]
}

func (s otterSim) Access(k uint64) bool {
	if _, ok := s.c.GetIfPresent(k); ok {
		return true
	}
	s.c.Set(k, struct{}{})
	return false
}

func (s otterSim) Close() { s.c.StopAllGoroutines() }

// HitRatio replays keys against a new cache of the spec and size.
func HitRatio(spec SimSpec, keys []uint64, size int) float64 {
	c := spec.New(size)
	defer c.Close()
	hits := 0
	for _, k := range keys {
		if c.Access(k) {
			hits++
		}
	}
	return float64(hits) / float64(len(keys))
}

// StandardSims are the caches of the hit-ratio table.
func StandardSims() []SimSpec {
	var out []SimSpec
	for _, shards := range []int{1, 8} {
		for _, p := range []store.Policy{store.LRU, store.LFU, store.FIFO, store.TinyLFU} {
			out = append(out, StoreSim(p, shards))
		}
	}
	return append(out, OtterSim)
}
