package store

import "math/bits"

// sketch estimates how often a key hash was seen recently: a count-min
// sketch of 4-bit counters, four counters per key, all in one 64-byte
// block so an update touches one cache line. Aging halves every counter
// after sampleSize (ten times the capacity) additions, so old popularity
// fades. There is no doorkeeper (a Bloom filter for first sightings): it
// saves sketch memory only if the sketch is shrunk to match, and on the
// loop trace of docs/benchmarks.md it cost up to two points of hit ratio.
type sketch struct {
	table      []uint64 // blocks of 8 words, 16 counters per word
	blockMask  uint64
	capacity   int // keys the sketch is sized for
	limit      int // largest capacity it may grow to; 0 = none
	additions  int
	sampleSize int
}

const (
	maxCount      = 15
	resetMask     = 0x7777777777777777
	minSketchKeys = 64
)

// needsGrow reports whether the sketch is too small for n keys and may
// still grow.
func (s *sketch) needsGrow(n int) bool {
	return n > s.capacity && (s.limit <= 0 || s.capacity < s.limit)
}

// grow resizes the sketch for at least n keys (twice its capacity at
// least, so growth is amortised O(1)), up to its limit. It drops every
// count: the caller carries over the counts of the keys it holds.
func (s *sketch) grow(n int) {
	c := max(n, 2*s.capacity, minSketchKeys)
	if s.limit > 0 {
		c = min(c, s.limit)
	}
	words := nextPow2(c) // 16 counters a key, 4 per row
	blocks := max(words/8, 1)
	s.table = make([]uint64, blocks*8)
	s.blockMask = uint64(blocks - 1)
	s.capacity = c
	s.sampleSize = 10 * c
	s.additions = 0
}

// spread mixes a hash so the counters do not reuse the shard's bits.
func spread(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// increment counts one sighting of hash h.
func (s *sketch) increment(h uint64) {
	if s.table == nil {
		return
	}
	x := spread(h)
	block := (x & s.blockMask) * 8
	y := x >> 32
	added := false
	for i := uint64(0); i < 4; i++ {
		w := block + i*2 + (y>>(i*8))&1
		shift := ((y >> (i*8 + 1)) & 15) * 4
		if (s.table[w]>>shift)&15 < maxCount {
			s.table[w] += 1 << shift
			added = true
		}
	}
	if added {
		s.tick()
	}
}

// raise sets the counters of hash h to at least count.
func (s *sketch) raise(h uint64, count int) {
	x := spread(h)
	count = min(count, maxCount)
	block := (x & s.blockMask) * 8
	y := x >> 32
	for i := uint64(0); i < 4; i++ {
		w := block + i*2 + (y>>(i*8))&1
		shift := ((y >> (i*8 + 1)) & 15) * 4
		if int((s.table[w]>>shift)&15) < count {
			s.table[w] = s.table[w]&^(15<<shift) | uint64(count)<<shift
		}
	}
}

// estimate returns the counted sightings of hash h, at most maxCount.
func (s *sketch) estimate(h uint64) int {
	if s.table == nil {
		return 0
	}
	x := spread(h)
	block := (x & s.blockMask) * 8
	y := x >> 32
	least := maxCount
	for i := uint64(0); i < 4; i++ {
		w := block + i*2 + (y>>(i*8))&1
		shift := ((y >> (i*8 + 1)) & 15) * 4
		least = min(least, int((s.table[w]>>shift)&15))
	}
	return least
}

func (s *sketch) tick() {
	s.additions++
	if s.additions >= s.sampleSize {
		s.age()
	}
}

// age halves every counter.
func (s *sketch) age() {
	for i, w := range s.table {
		s.table[i] = (w >> 1) & resetMask
	}
	s.additions /= 2
}

// nextPow2 returns the least power of two at least n (n >= 1).
func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}
