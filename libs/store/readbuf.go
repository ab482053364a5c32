package store

import "sync/atomic"

// readBufferSize is the number of reads a shard buffers (a power of two).
const readBufferSize = 64

// readDrainRounds is how many rounds of the buffer readers fill between
// their own drains (a power of two): in a long run of reads without a
// write, the policy sees one read in readDrainRounds. Every write drains
// the reads since the last drain, up to a full buffer.
const readDrainRounds = 4

// readBuffer is a lossy ring of entries that were read, for a policy that
// can take its hits late and can lose a few: readers add without a lock,
// and whoever holds the shard's write lock drains. When readers lap the
// drainer, an older read is overwritten and lost; a slot whose reader has
// taken its index but not yet stored may be drained with the entry of the
// round before, counted twice. head counts every read, lost or not, so it
// is also the shard's count of buffered hits.
type readBuffer[K comparable, V any] struct {
	head  atomic.Uint64 // slots taken by readers so far
	tail  uint64        // slots drained so far; guarded by the shard's mu
	slots [readBufferSize]atomic.Pointer[entry[K, V]]
}

// add records a read of e and reports whether the reader should drain
// the buffer: every readDrainRounds rounds.
func (b *readBuffer[K, V]) add(e *entry[K, V]) bool {
	i := b.head.Add(1)
	b.slots[i&(readBufferSize-1)].Store(e)
	return i&(readDrainRounds*readBufferSize-1) == 0
}

// drain hands the entries buffered since the last drain to apply, oldest
// first. Slots are read, not cleared: the indexes say which are new. With
// no reads since, it costs one load. Caller must hold the shard's write
// lock.
func (b *readBuffer[K, V]) drain(apply func(*entry[K, V])) {
	head := b.head.Load()
	from := max(b.tail, head-min(head, readBufferSize)) + 1
	for i := from; i <= head; i++ {
		if e := b.slots[i&(readBufferSize-1)].Load(); e != nil {
			apply(e)
		}
	}
	b.tail = head
}

// reset forgets every buffered read. Caller must hold the shard's write
// lock.
func (b *readBuffer[K, V]) reset() {
	for i := range b.slots {
		b.slots[i].Store(nil)
	}
	b.tail = b.head.Load()
}
