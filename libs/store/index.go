package store

import "sync/atomic"

// index is a shard's hash table from key to entry: open addressing with
// linear probing. A slot holds the key's hash as a tag beside the entry
// pointer, so a probe reads neighbouring slots of one cache line and
// follows a pointer only when the tag matches. Writers change it under
// the shard's write lock; readers look up without any lock, because tag
// and pointer are atomic and an entry's key, hash, value and expiry never
// change once it is published (a Set of a present key publishes a new
// entry in its place). A deleted slot keeps the tomb tag so that probes
// pass over it; tombs are dropped when the table is rebuilt, which a
// writer does into a new table that it then publishes, when entries and
// tombs fill three quarters of the slots.
type index[K comparable, V any] struct {
	slots []slot[K, V]
	mask  uint64
	live  int // entries; guarded by the shard's mu
	used  int // entries and tombs; guarded by the shard's mu
}

// slot is one place of an index. A writer stores the pointer before the
// tag, so a reader that sees a tag sees its entry or a later one.
type slot[K comparable, V any] struct {
	tag atomic.Uint64 // tagEmpty, tagTomb or tagOf(hash)
	e   atomic.Pointer[entry[K, V]]
}

const (
	tagEmpty      = 0
	tagTomb       = 1
	minIndexSlots = 8
)

// tagOf maps a hash to a tag, avoiding the two reserved values.
func tagOf(h uint64) uint64 {
	if h <= tagTomb {
		return h + 2
	}
	return h
}

// newIndex returns an empty table with room for n entries, at most half
// full.
func newIndex[K comparable, V any](n int) *index[K, V] {
	size := max(nextPow2(2*n), minIndexSlots)
	return &index[K, V]{slots: make([]slot[K, V], size), mask: uint64(size - 1)}
}

// find returns the entry of key, whose hash is h, or nil. It takes no
// lock.
func (ix *index[K, V]) find(h uint64, key K) *entry[K, V] {
	tag := tagOf(h)
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		switch t := s.tag.Load(); t {
		case tagEmpty:
			return nil
		case tag:
			if e := s.e.Load(); e != nil && e.hash == h && e.key == key {
				return e
			}
		}
	}
}

// full reports whether one more entry would fill three quarters of the
// slots. Caller must hold the shard's mu.
func (ix *index[K, V]) full() bool {
	return 4*(ix.used+1) > 3*len(ix.slots)
}

// insert publishes e, whose key is absent. The table must not be full.
// Caller must hold the shard's mu.
func (ix *index[K, V]) insert(e *entry[K, V]) {
	for i := e.hash & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		t := s.tag.Load()
		if t == tagEmpty || t == tagTomb {
			if t == tagEmpty {
				ix.used++
			}
			ix.live++
			s.e.Store(e)
			s.tag.Store(tagOf(e.hash))
			return
		}
	}
}

// slotOf returns the slot holding e, which must be present.
func (ix *index[K, V]) slotOf(e *entry[K, V]) *slot[K, V] {
	for i := e.hash & ix.mask; ; i = (i + 1) & ix.mask {
		if s := &ix.slots[i]; s.e.Load() == e {
			return s
		}
	}
}

// remove unpublishes e, which must be present. Caller must hold the
// shard's mu.
func (ix *index[K, V]) remove(e *entry[K, V]) {
	s := ix.slotOf(e)
	s.tag.Store(tagTomb)
	s.e.Store(nil)
	ix.live--
}

// replace publishes nu, of the same key, in the place of old. Caller must
// hold the shard's mu.
func (ix *index[K, V]) replace(old, nu *entry[K, V]) {
	ix.slotOf(old).e.Store(nu)
}

// rebuilt returns a new table holding the same entries without tombs,
// with room for one more. Caller must hold the shard's mu.
func (ix *index[K, V]) rebuilt() *index[K, V] {
	nx := newIndex[K, V](ix.live + 1)
	ix.each(nx.insert)
	return nx
}

// each calls fn for every entry. Caller must hold the shard's mu.
func (ix *index[K, V]) each(fn func(*entry[K, V])) {
	for i := range ix.slots {
		if e := ix.slots[i].e.Load(); e != nil {
			fn(e)
		}
	}
}
