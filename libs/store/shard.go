package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// entry is one key and value with its bookkeeping. key, value, hash,
// expire and size never change once the entry is published in its
// shard's index, so readers may use them without a lock; a Set of a
// present key publishes a new entry instead. The other fields are
// guarded by the lock of the shard that holds the entry.
type entry[K comparable, V any] struct {
	key          K
	value        V
	hash         uint64
	expire       int64 // unix nanoseconds; 0 = never
	size         int64 // Size(key, value) + EntryOverhead
	prev, next   *entry[K, V]
	tprev, tnext *entry[K, V]      // the expiry wheel's links
	bucket       *freqBucket[K, V] // LFU only
	queue        uint8             // TinyLFU region; 0 once removed
}

// shard is one lock's share of the store: its own index, policy, expiry
// wheel, limits and counters.
type shard[K comparable, V any] struct {
	// read-only after newShard
	maxEntries int   // 0 = none
	maxBytes   int64 // 0 = none
	reads      readMode

	// safe on their own
	idx          atomic.Pointer[index[K, V]] // replaced under mu
	hits, misses atomic.Uint64               // reads; see readCounts
	buf          readBuffer[K, V]            // reads waiting for the policy

	mu          sync.RWMutex
	pol         policy[K, V] // guarded by mu
	wheel       *wheel[K, V] // guarded by mu; nil until a TTL is used
	bytes       int64        // guarded by mu
	evictions   uint64       // guarded by mu
	expirations uint64       // guarded by mu
	_           [64]byte     // keeps the next shard's lock off this line
}

// readMode says how Get tells the policy about a hit.
type readMode uint8

const (
	// readLocked takes the write lock and updates the policy at once:
	// exact LRU and LFU.
	readLocked readMode = iota
	// readFree takes no lock: FIFO, which reads do not move.
	readFree
	// readBuffered takes no lock and records the hit in the lossy read
	// buffer, applied to the policy later under the write lock: TinyLFU,
	// which is approximate anyway.
	readBuffered
)

func newShard[K comparable, V any](p Policy, maxEntries int, maxBytes int64) *shard[K, V] {
	sh := &shard[K, V]{maxEntries: maxEntries, maxBytes: maxBytes}
	switch p {
	case FIFO:
		sh.reads = readFree
	case TinyLFU:
		sh.reads = readBuffered
	}
	sh.idx.Store(newIndex[K, V](0))
	sh.pol = newPolicy[K, V](p, maxEntries, sh.readCounts)
	return sh
}

// readCounts returns the shard's hits and misses: those counted under the
// lock and those the read buffer counted.
func (sh *shard[K, V]) readCounts() (hits, misses uint64) {
	h, m := sh.buf.counts()
	return sh.hits.Load() + h, sh.misses.Load() + m
}

// len returns the number of entries. Caller must hold mu.
func (sh *shard[K, V]) len() int { return sh.idx.Load().live }

func (sh *shard[K, V]) get(s *Store[K, V], key K, h uint64, evs []Event[K]) (V, time.Duration, bool, []Event[K]) {
	if sh.reads == readLocked {
		return sh.getLocked(s, key, h, evs)
	}
	var zero V
	e := sh.idx.Load().find(h, key)
	if e == nil {
		if sh.reads == readBuffered {
			sh.buf.miss()
		} else {
			sh.misses.Add(1)
		}
		return zero, 0, false, evs
	}
	var ttl time.Duration
	if e.expire != 0 {
		now := s.now()
		if e.expire <= now {
			return sh.getLocked(s, key, h, evs) // expire it under the lock
		}
		ttl = time.Duration(e.expire - now)
	}
	if sh.reads != readBuffered {
		sh.hits.Add(1)
	} else if sh.buf.add(e) { // counts the hit too
		sh.drainReads()
	}
	return e.value, ttl, true, evs
}

// getLocked is Get under the write lock: it updates the policy at once
// and removes the entry if it has expired.
func (sh *shard[K, V]) getLocked(s *Store[K, V], key K, h uint64, evs []Event[K]) (V, time.Duration, bool, []Event[K]) {
	var zero V
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.idx.Load().find(h, key)
	if e == nil {
		sh.misses.Add(1)
		return zero, 0, false, evs
	}
	var ttl time.Duration
	if e.expire != 0 {
		now := s.now()
		if e.expire <= now {
			sh.misses.Add(1)
			return zero, 0, false, sh.expireLocked(s, e, evs)
		}
		ttl = time.Duration(e.expire - now)
	}
	sh.hits.Add(1)
	sh.pol.hit(e)
	return e.value, ttl, true, evs
}

// drainReads applies the buffered reads if the write lock is free; a busy
// lock means a writer that drains them itself.
func (sh *shard[K, V]) drainReads() {
	if !sh.mu.TryLock() {
		return
	}
	sh.drainReadsLocked()
	sh.mu.Unlock()
}

// drainReadsLocked applies the buffered reads of entries still present.
// Caller must hold mu.
func (sh *shard[K, V]) drainReadsLocked() {
	if sh.reads != readBuffered {
		return
	}
	sh.buf.drain(func(e *entry[K, V]) {
		if e.queue != 0 { // still in the shard
			sh.pol.hit(e)
		}
	})
}

func (sh *shard[K, V]) set(s *Store[K, V], key K, v V, h uint64, size, expire int64, evs []Event[K]) ([]Event[K], error) {
	if sh.maxBytes > 0 && size > sh.maxBytes {
		return evs, ErrTooLarge
	}
	nu := &entry[K, V]{key: key, value: v, hash: h, size: size, expire: expire}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.drainReadsLocked()
	var added *entry[K, V]
	if old := sh.idx.Load().find(h, key); old != nil {
		sh.replaceLocked(s, old, nu)
	} else {
		sh.addLocked(s, nu)
		added = nu
	}
	if s.onEvent != nil {
		evs = append(evs, Event[K]{Kind: EventSet, Key: key})
	}
	return sh.evictLocked(s, added, evs), nil
}

// replaceLocked puts nu, a new entry for old's key, in old's place: in
// the index, the policy's order and the expiry wheel. Caller must hold
// mu.
func (sh *shard[K, V]) replaceLocked(s *Store[K, V], old, nu *entry[K, V]) {
	sh.bytes += nu.size - old.size
	sh.idx.Load().replace(old, nu)
	sh.pol.replace(old, nu)
	if old.expire != 0 {
		sh.wheel.unschedule(old)
	}
	sh.scheduleLocked(s, nu)
	sh.pol.update(nu)
}

// addLocked stores the new entry e. Caller must hold mu.
func (sh *shard[K, V]) addLocked(s *Store[K, V], e *entry[K, V]) {
	ix := sh.idx.Load()
	if ix.full() {
		ix = ix.rebuilt()
		sh.idx.Store(ix)
	}
	ix.insert(e)
	sh.bytes += e.size
	sh.pol.add(e)
	sh.scheduleLocked(s, e)
}

// scheduleLocked files e in the expiry wheel if it has an expiry time.
// Caller must hold mu.
func (sh *shard[K, V]) scheduleLocked(s *Store[K, V], e *entry[K, V]) {
	if e.expire == 0 {
		return
	}
	if sh.wheel == nil {
		sh.wheel = newWheel[K, V](s.now())
	}
	sh.wheel.schedule(e)
}

// overLocked reports whether a limit is exceeded. Caller must hold mu.
func (sh *shard[K, V]) overLocked() bool {
	return (sh.maxEntries > 0 && sh.len() > sh.maxEntries) ||
		(sh.maxBytes > 0 && sh.bytes > sh.maxBytes)
}

// evictLocked removes the policy's victims until both limits hold; added
// is the entry this Set added, if any. A victim found already expired
// counts as an expiration. Caller must hold mu.
func (sh *shard[K, V]) evictLocked(s *Store[K, V], added *entry[K, V], evs []Event[K]) []Event[K] {
	for sh.overLocked() {
		e := sh.pol.victim(added)
		if e == nil {
			return evs
		}
		if e.expire != 0 && e.expire <= s.now() {
			evs = sh.expireLocked(s, e, evs)
			continue
		}
		sh.removeLocked(e)
		sh.evictions++
		if s.onEvent != nil {
			evs = append(evs, Event[K]{Kind: EventEvict, Key: e.key})
		}
	}
	return evs
}

// expireLocked removes the expired entry e. Caller must hold mu.
func (sh *shard[K, V]) expireLocked(s *Store[K, V], e *entry[K, V], evs []Event[K]) []Event[K] {
	sh.removeLocked(e)
	sh.expirations++
	if s.onEvent != nil {
		evs = append(evs, Event[K]{Kind: EventExpire, Key: e.key})
	}
	return evs
}

// removeLocked unlinks e from the index, the policy and the wheel. Caller
// must hold mu.
func (sh *shard[K, V]) removeLocked(e *entry[K, V]) {
	sh.idx.Load().remove(e)
	sh.pol.remove(e)
	e.queue = 0
	if e.expire != 0 {
		sh.wheel.unschedule(e)
	}
	sh.bytes -= e.size
}

func (sh *shard[K, V]) delete(s *Store[K, V], key K, h uint64, evs []Event[K]) (bool, []Event[K]) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.idx.Load().find(h, key)
	if e == nil {
		return false, evs
	}
	if e.expire != 0 && e.expire <= s.now() {
		return false, sh.expireLocked(s, e, evs)
	}
	sh.removeLocked(e)
	if s.onEvent != nil {
		evs = append(evs, Event[K]{Kind: EventDelete, Key: key})
	}
	return true, evs
}

func (sh *shard[K, V]) clear() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// A reader may still hold an entry it found before the lock and put
	// it into the read buffer later: mark every entry gone so that the
	// drain skips it rather than touch the cleared policy's lists.
	sh.idx.Load().each(func(e *entry[K, V]) { e.queue = 0 })
	sh.idx.Store(newIndex[K, V](0))
	sh.buf.reset()
	sh.pol.clear()
	sh.wheel = nil
	sh.bytes = 0
}

// reclaim advances the wheel to now and expires at most budget entries
// whose time has passed. It returns the events and how many entries it
// expired.
func (sh *shard[K, V]) reclaim(s *Store[K, V], now int64, budget int, evs []Event[K]) ([]Event[K], int) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.wheel == nil {
		return evs, 0
	}
	sh.wheel.advance(now)
	expired := 0
	for range budget {
		e := sh.wheel.popDue()
		if e == nil {
			break
		}
		if e.expire <= now {
			evs = sh.expireLocked(s, e, evs)
			expired++
			continue
		}
		sh.wheel.schedule(e)
	}
	return evs, expired
}
