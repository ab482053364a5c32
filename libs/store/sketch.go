package store

import "math/bits"

// sketch estimates how often a key hash was seen recently: a count-min
// sketch of 4-bit counters (four counters per key, all in one 64-byte
// block) behind a doorkeeper, a Bloom filter that takes a key's first
// sighting so that keys seen once never reach the counters. Aging halves
// every counter and clears the doorkeeper after sampleSize additions, so
// old popularity fades.
type sketch struct {
	table      []uint64 // blocks of 8 words, 16 counters per word
	blockMask  uint64
	door       []uint64 // doorkeeper bits
	doorMask   uint64
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
	doorWords := max(nextPow2(c)/8, 1) // 8 doorkeeper bits a key
	s.door = make([]uint64, doorWords)
	s.doorMask = uint64(doorWords*64 - 1)
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
	if !s.doorAdd(x) {
		s.tick()
		return
	}
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
	if count > 0 {
		s.doorAdd(x)
		count--
	}
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

// estimate returns the counted sightings of hash h, at most maxCount+1.
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
	if s.doorHas(x) {
		least++
	}
	return least
}

func (s *sketch) tick() {
	s.additions++
	if s.additions >= s.sampleSize {
		s.age()
	}
}

// age halves every counter and clears the doorkeeper.
func (s *sketch) age() {
	for i, w := range s.table {
		s.table[i] = (w >> 1) & resetMask
	}
	clear(s.door)
	s.additions /= 2
}

// doorAdd sets x's two doorkeeper bits and reports whether both were set.
func (s *sketch) doorAdd(x uint64) bool {
	a, b := (x>>8)&s.doorMask, (x>>36)&s.doorMask
	wa, ba := a/64, uint64(1)<<(a%64)
	wb, bb := b/64, uint64(1)<<(b%64)
	seen := s.door[wa]&ba != 0 && s.door[wb]&bb != 0
	s.door[wa] |= ba
	s.door[wb] |= bb
	return seen
}

func (s *sketch) doorHas(x uint64) bool {
	a, b := (x>>8)&s.doorMask, (x>>36)&s.doorMask
	return s.door[a/64]&(1<<(a%64)) != 0 && s.door[b/64]&(1<<(b%64)) != 0
}

// nextPow2 returns the least power of two at least n (n >= 1).
func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}
