package store

import (
	"sync/atomic"
	"unsafe"
)

// The read buffer has readStripes stripes of readStripeSize slots each
// (powers of two).
const (
	readStripes    = 4
	readStripeSize = 64
)

// readDrainRounds is how many rounds of its stripe a reader fills between
// its own drains (a power of two): in a long run of reads without a
// write, the policy sees about one read in readDrainRounds. Every write
// drains the reads since the last drain, up to a full stripe each.
const readDrainRounds = 16

// readBuffer is a lossy buffer of entries that were read, for a policy
// that can take its hits late and can lose a few: readers add without a
// lock, and whoever holds the shard's write lock drains. It is striped by
// goroutine (by the address of the reader's stack), so that readers on
// different cores mostly write cache lines of their own: a line written
// from one core and then another is what makes a shared counter slow.
// When readers lap the drainer in a stripe, an older read is overwritten
// and lost; a slot whose reader has taken its index but not yet stored may
// be drained with the entry of the round before, counted twice. The
// stripes count every read they see, hit (head) or miss, lost or not: they
// are the shard's read counters for the lock-free read paths.
type readBuffer[K comparable, V any] struct {
	stripes [readStripes]readStripe[K, V]
}

// readStripe is one ring of a read buffer: a cache line of counters, then
// its slots.
type readStripe[K comparable, V any] struct {
	head   atomic.Uint64 // hits recorded, each taking the next slot
	misses atomic.Uint64 // misses seen by readers of this stripe
	tail   uint64        // slots drained so far; guarded by the shard's mu
	_      [40]byte
	slots  [readStripeSize]atomic.Pointer[entry[K, V]]
}

// stripe returns the calling goroutine's stripe: stacks of goroutines
// running at the same time lie apart, and a goroutine's stays put.
func (b *readBuffer[K, V]) stripe() *readStripe[K, V] {
	var anchor byte
	h := uint64(uintptr(unsafe.Pointer(&anchor))>>10) * 0x9E3779B97F4A7C15
	return &b.stripes[h>>(64-2)&(readStripes-1)]
}

// add records a hit on e and reports whether the reader should drain the
// buffer: every readDrainRounds rounds of its stripe.
func (b *readBuffer[K, V]) add(e *entry[K, V]) bool {
	s := b.stripe()
	i := s.head.Add(1)
	s.slots[i&(readStripeSize-1)].Store(e)
	return i&(readDrainRounds*readStripeSize-1) == 0
}

// miss counts a miss of a lock-free reader.
func (b *readBuffer[K, V]) miss() { b.stripe().misses.Add(1) }

// counts returns the hits and misses the stripes have seen.
func (b *readBuffer[K, V]) counts() (hits, misses uint64) {
	for i := range b.stripes {
		hits += b.stripes[i].head.Load()
		misses += b.stripes[i].misses.Load()
	}
	return hits, misses
}

// drain hands the entries buffered since the last drain to apply, stripe
// by stripe, oldest first in each. Slots are read, not cleared: the
// indexes say which are new. Caller must hold the shard's write lock.
func (b *readBuffer[K, V]) drain(apply func(*entry[K, V])) {
	for j := range b.stripes {
		s := &b.stripes[j]
		head := s.head.Load()
		if head == s.tail {
			continue
		}
		from := max(s.tail, head-min(head, readStripeSize)) + 1
		for i := from; i <= head; i++ {
			if e := s.slots[i&(readStripeSize-1)].Load(); e != nil {
				apply(e)
			}
		}
		s.tail = head
	}
}

// reset forgets every buffered read. Caller must hold the shard's write
// lock.
func (b *readBuffer[K, V]) reset() {
	for j := range b.stripes {
		s := &b.stripes[j]
		for i := range s.slots {
			s.slots[i].Store(nil)
		}
		s.tail = s.head.Load()
	}
}
