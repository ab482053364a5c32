package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// entry is one key and value with its bookkeeping. Every field is guarded
// by the lock of the shard that holds the entry.
type entry[K comparable, V any] struct {
	key          K
	value        V
	hash         uint64
	expire       int64 // unix nanoseconds; 0 = never
	size         int64 // Size(key, value) + EntryOverhead
	prev, next   *entry[K, V]
	tprev, tnext *entry[K, V]      // the expiry wheel's links
	bucket       *freqBucket[K, V] // LFU only
	queue        uint8             // TinyLFU region
}

// shard is one lock's share of the store: its own map, policy, expiry
// wheel, limits and counters.
type shard[K comparable, V any] struct {
	// read-only after newShard
	maxEntries int   // 0 = none
	maxBytes   int64 // 0 = none
	reads      readMode

	// safe on their own
	hits, misses atomic.Uint64    // reads; see hitCount
	buf          readBuffer[K, V] // reads waiting for the policy (readBuffered)

	mu          sync.RWMutex
	items       map[K]*entry[K, V] // guarded by mu
	pol         policy[K, V]       // guarded by mu
	wheel       *wheel[K, V]       // guarded by mu; nil until a TTL is used
	bytes       int64              // guarded by mu
	evictions   uint64             // guarded by mu
	expirations uint64             // guarded by mu
	spare       *entry[K, V]       // guarded by mu; an evicted entry to reuse
	_           [64]byte           // keeps the next shard's lock off this line
}

// readMode says how Get tells the policy about a hit.
type readMode uint8

const (
	// readLocked takes the write lock and updates the policy at once:
	// exact LRU and LFU.
	readLocked readMode = iota
	// readShared takes the read lock only: FIFO, which reads do not move.
	readShared
	// readBuffered takes the read lock and records the hit in the lossy
	// read buffer, applied to the policy later under the write lock:
	// TinyLFU, which is approximate anyway.
	readBuffered
)

func newShard[K comparable, V any](p Policy, maxEntries int, maxBytes int64) *shard[K, V] {
	sh := &shard[K, V]{
		maxEntries: maxEntries,
		maxBytes:   maxBytes,
		items:      make(map[K]*entry[K, V]),
	}
	switch p {
	case FIFO:
		sh.reads = readShared
	case TinyLFU:
		sh.reads = readBuffered
	}
	sh.pol = newPolicy[K, V](p, maxEntries, func() (uint64, uint64) {
		return sh.hitCount(), sh.misses.Load()
	})
	return sh
}

// hitCount returns the shard's hits: those counted by hits, and the
// buffered ones, which the read buffer's head counts.
func (sh *shard[K, V]) hitCount() uint64 {
	return sh.hits.Load() + sh.buf.head.Load()
}

func (sh *shard[K, V]) get(s *Store[K, V], key K, wantTTL bool, evs []Event[K]) (V, time.Duration, bool, []Event[K]) {
	if sh.reads == readLocked {
		return sh.getLocked(s, key, evs)
	}
	var zero V
	sh.mu.RLock()
	e, ok := sh.items[key]
	if !ok {
		sh.mu.RUnlock()
		sh.misses.Add(1)
		return zero, 0, false, evs
	}
	v, expire := e.value, e.expire
	sh.mu.RUnlock()
	var ttl time.Duration
	if expire != 0 {
		now := s.now()
		if expire <= now {
			return sh.getLocked(s, key, evs) // expire it under the write lock
		}
		ttl = time.Duration(expire - now)
	}
	if sh.reads != readBuffered {
		sh.hits.Add(1)
	} else if sh.buf.add(e) { // counts the hit too
		sh.drainReads()
	}
	return v, ttl, true, evs
}

// getLocked is Get under the write lock: it updates the policy at once
// and removes the entry if it has expired.
func (sh *shard[K, V]) getLocked(s *Store[K, V], key K, evs []Event[K]) (V, time.Duration, bool, []Event[K]) {
	var zero V
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.items[key]
	if !ok {
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
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.drainReadsLocked()
	var added *entry[K, V]
	if e, ok := sh.items[key]; ok {
		sh.replaceLocked(s, e, v, size, expire)
	} else {
		added = sh.addLocked(s, key, v, h, size, expire)
	}
	if s.onEvent != nil {
		evs = append(evs, Event[K]{Kind: EventSet, Key: key})
	}
	return sh.evictLocked(s, added, evs), nil
}

// replaceLocked gives the present entry e a new value, size and expiry.
// Caller must hold mu.
func (sh *shard[K, V]) replaceLocked(s *Store[K, V], e *entry[K, V], v V, size, expire int64) {
	sh.bytes += size - e.size
	e.value = v
	e.size = size
	if e.expire != expire {
		if e.expire != 0 {
			sh.wheel.unschedule(e)
		}
		e.expire = expire
		sh.scheduleLocked(s, e)
	}
	sh.pol.update(e)
}

// addLocked stores a new entry. Caller must hold mu.
func (sh *shard[K, V]) addLocked(s *Store[K, V], key K, v V, h uint64, size, expire int64) *entry[K, V] {
	e := sh.spare
	if e != nil {
		sh.spare = nil
	} else {
		e = new(entry[K, V])
	}
	e.key, e.value, e.hash, e.size, e.expire = key, v, h, size, expire
	sh.items[key] = e
	sh.bytes += size
	sh.pol.add(e)
	sh.scheduleLocked(s, e)
	return e
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
	return (sh.maxEntries > 0 && len(sh.items) > sh.maxEntries) ||
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
		// The next add reuses the evicted entry: a steady stream of
		// evicting writes allocates nothing. A lost read of it still in
		// the read buffer may then count for the new key, which only
		// TinyLFU, approximate anyway, reads that way.
		*e = entry[K, V]{}
		sh.spare = e
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

// removeLocked unlinks e from the map, the policy and the wheel. Caller
// must hold mu.
func (sh *shard[K, V]) removeLocked(e *entry[K, V]) {
	delete(sh.items, e.key)
	sh.pol.remove(e)
	if e.expire != 0 {
		sh.wheel.unschedule(e)
	}
	sh.bytes -= e.size
}

func (sh *shard[K, V]) delete(s *Store[K, V], key K, evs []Event[K]) (bool, []Event[K]) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.items[key]
	if !ok {
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
	for _, e := range sh.items {
		e.queue = 0
	}
	sh.buf.reset()
	sh.items = make(map[K]*entry[K, V])
	sh.pol.clear()
	sh.wheel = nil
	sh.spare = nil
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
