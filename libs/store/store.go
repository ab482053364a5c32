package store

import (
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"time"
)

// EntryOverhead is the fixed number of bytes counted for each entry on top
// of Size(key, value). It is what an entry with a string key and a []byte
// value was measured to cost in this layout beyond its key and value
// bytes, with a million entries: the entry record (112 bytes), its share
// of the shard's index (16-byte slots, 1.33 to 2.67 slots per entry as
// the table fills between rebuilds: 21 to 43 bytes, 34 at a million) and
// its share of TinyLFU's frequency sketch (8 bytes). bench/store's
// BenchmarkMemory compares the accounted bytes with the heap's growth;
// see docs/benchmarks.md. Other key and value types cost more or less:
// the overhead is a fixed estimate, not a measurement of each entry.
const EntryOverhead = 152

// ErrTooLarge reports an entry that alone exceeds the byte limit (or, with
// several shards, a shard's share of it). The store is left as it was.
var ErrTooLarge = errors.New("store: entry exceeds the byte limit")

// Options configure a Store. At least one of MaxEntries and MaxBytes must
// be set.
type Options[K comparable, V any] struct {
	Policy     Policy        // "" = TinyLFU
	MaxEntries int           // 0 = no entry limit
	MaxBytes   int64         // 0 = no byte limit; at least one limit is required
	DefaultTTL time.Duration // 0 = entries never expire unless given a TTL
	// Size returns the bytes of key plus value. Required when MaxBytes > 0.
	Size func(K, V) int64
	// OnEvent, if set, is called for every set, delete, evict and expire,
	// after the store's locks are released; it must not block.
	OnEvent func(Event[K])
	Clock   Clock // nil = real time; tests inject a fake clock
	Shards  int   // 0 = chosen from GOMAXPROCS and the limits; 1 = exact policy

	// ReclaimInterval is the period of the background reclaimer of
	// expired entries. 0 = one second; negative = no background goroutine
	// (call ReclaimExpired yourself, as tests do with a fake clock).
	ReclaimInterval time.Duration
	// ReclaimBudget bounds the entries one reclaimer tick examines in each
	// shard. 0 = 1024.
	ReclaimBudget int
}

// Clock tells the time. Tests inject a fake one.
type Clock interface{ Now() time.Time }

// EventKind says what happened to a key.
type EventKind uint8

// The event kinds.
const (
	EventSet    EventKind = iota + 1 // a Set stored a value
	EventDelete                      // Delete removed the key
	EventEvict                       // a limit pushed the entry out
	EventExpire                      // the entry's TTL ran out
)

func (k EventKind) String() string {
	switch k {
	case EventSet:
		return "set"
	case EventDelete:
		return "delete"
	case EventEvict:
		return "evict"
	case EventExpire:
		return "expire"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is delivered to Options.OnEvent.
type Event[K comparable] struct {
	Kind EventKind
	Key  K
}

// Stats are the store's counters since New, and its current contents.
type Stats struct {
	Hits, Misses, Evictions, Expirations uint64
	Entries                              int
	Bytes                                int64
	MaxEntries                           int
	MaxBytes                             int64
	Policy                               Policy
}

// HitRatio returns hits/(hits+misses), 0 when there were no reads.
func (s Stats) HitRatio() float64 {
	total := s.Hits + s.Misses
	if total == 0 {
		return 0
	}
	return float64(s.Hits) / float64(total)
}

// StringBytesSize is Options.Size for string keys and []byte values.
func StringBytesSize(k string, v []byte) int64 { return int64(len(k) + len(v)) }

// Store is a bounded, concurrent key-value store. See the package doc.
type Store[K comparable, V any] struct {
	// read-only after New
	shards     []*shard[K, V]
	seed       maphash.Seed
	size       func(K, V) int64
	onEvent    func(Event[K])
	clock      Clock
	defaultTTL time.Duration
	policy     Policy
	maxEntries int
	maxBytes   int64
	budget     int

	// the background reclaimer
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// Defaults that shape sharding and reclaiming.
const (
	minShardEntries = 1024    // a shard's entry share is never smaller
	minShardBytes   = 1 << 20 // a shard's byte share is never smaller
	shardsPerProc   = 8
	maxShards       = 256
	defaultBudget   = 1024
	defaultInterval = time.Second
)

// New returns a store configured by opts, with its reclaimer running.
func New[K comparable, V any](opts Options[K, V]) (*Store[K, V], error) {
	if err := validate(&opts); err != nil {
		return nil, err
	}
	s := &Store[K, V]{
		seed:       maphash.MakeSeed(),
		size:       opts.Size,
		onEvent:    opts.OnEvent,
		clock:      opts.Clock,
		defaultTTL: opts.DefaultTTL,
		policy:     opts.Policy,
		maxEntries: opts.MaxEntries,
		maxBytes:   opts.MaxBytes,
		budget:     opts.ReclaimBudget,
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.budget == 0 {
		s.budget = defaultBudget
	}
	n := shardCount(opts)
	s.shards = make([]*shard[K, V], n)
	for i := range s.shards {
		entries := splitShare(int64(opts.MaxEntries), n, i)
		bytes := splitShare(opts.MaxBytes, n, i)
		s.shards[i] = newShard[K, V](opts.Policy, int(entries), bytes)
	}
	s.startReclaimer(opts.ReclaimInterval)
	return s, nil
}

func validate[K comparable, V any](o *Options[K, V]) error {
	if o.Policy == "" {
		o.Policy = TinyLFU
	}
	if _, err := ParsePolicy(string(o.Policy)); err != nil {
		return err
	}
	switch {
	case o.MaxEntries < 0:
		return fmt.Errorf("store: MaxEntries %d is negative", o.MaxEntries)
	case o.MaxBytes < 0:
		return fmt.Errorf("store: MaxBytes %d is negative", o.MaxBytes)
	case o.MaxEntries == 0 && o.MaxBytes == 0:
		return errors.New("store: set MaxEntries, MaxBytes or both")
	case o.MaxBytes > 0 && o.Size == nil:
		return errors.New("store: MaxBytes needs a Size function")
	case o.DefaultTTL < 0:
		return fmt.Errorf("store: DefaultTTL %v is negative", o.DefaultTTL)
	case o.Shards < 0:
		return fmt.Errorf("store: Shards %d is negative", o.Shards)
	case o.ReclaimBudget < 0:
		return fmt.Errorf("store: ReclaimBudget %d is negative", o.ReclaimBudget)
	}
	if o.MaxEntries > 0 && o.Shards > o.MaxEntries {
		return fmt.Errorf("store: Shards %d exceeds MaxEntries %d", o.Shards, o.MaxEntries)
	}
	if o.MaxBytes > 0 && int64(o.Shards) > o.MaxBytes {
		return fmt.Errorf("store: Shards %d exceeds MaxBytes %d", o.Shards, o.MaxBytes)
	}
	return nil
}

// shardCount is Options.Shards, or by default shardsPerProc per
// GOMAXPROCS, lowered so every shard keeps at least minShardEntries
// entries and minShardBytes bytes of the limits: small caches get one
// shard and so the exact policy.
func shardCount[K comparable, V any](o Options[K, V]) int {
	if o.Shards > 0 {
		return o.Shards
	}
	n := min(shardsPerProc*runtime.GOMAXPROCS(0), maxShards)
	if o.MaxEntries > 0 {
		n = min(n, o.MaxEntries/minShardEntries)
	}
	if o.MaxBytes > 0 {
		n = min(n, int(o.MaxBytes/minShardBytes))
	}
	return max(n, 1)
}

// splitShare returns shard i's share of limit over n shards; the shares
// add up to limit exactly.
func splitShare(limit int64, n, i int) int64 {
	share := limit / int64(n)
	if int64(i) < limit%int64(n) {
		share++
	}
	return share
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (s *Store[K, V]) now() int64 { return s.clock.Now().UnixNano() }

func (s *Store[K, V]) shardOf(key K) (*shard[K, V], uint64) {
	h := maphash.Comparable(s.seed, key)
	i := (h >> 32) * uint64(len(s.shards)) >> 32
	return s.shards[i], h
}

// Get returns the value stored under key. An expired entry is never
// returned.
func (s *Store[K, V]) Get(key K) (V, bool) {
	v, _, ok := s.get(key, false)
	return v, ok
}

// GetWithTTL returns the value stored under key and the time it has left;
// ttl is 0 for an entry that never expires.
func (s *Store[K, V]) GetWithTTL(key K) (v V, ttl time.Duration, ok bool) {
	return s.get(key, true)
}

func (s *Store[K, V]) get(key K, wantTTL bool) (V, time.Duration, bool) {
	sh, h := s.shardOf(key)
	var buf [1]Event[K]
	v, ttl, ok, evs := sh.get(s, key, h, buf[:0])
	s.emit(evs)
	return v, ttl, ok
}

// Set stores v under key with the default TTL.
func (s *Store[K, V]) Set(key K, v V) error {
	return s.SetWithTTL(key, v, 0)
}

// SetWithTTL stores v under key for ttl; 0 means the default TTL. It
// returns ErrTooLarge, and changes nothing, when the entry alone exceeds
// the byte limit.
func (s *Store[K, V]) SetWithTTL(key K, v V, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("store: ttl %v is negative", ttl)
	}
	if ttl == 0 {
		ttl = s.defaultTTL
	}
	size := int64(EntryOverhead)
	if s.size != nil {
		n := s.size(key, v)
		if n < 0 {
			return fmt.Errorf("store: Size returned %d", n)
		}
		size += n
	}
	var expire int64
	if ttl > 0 {
		expire = s.now() + int64(ttl)
	}
	sh, h := s.shardOf(key)
	var buf [4]Event[K]
	evs, err := sh.set(s, key, v, h, size, expire, buf[:0])
	s.emit(evs)
	return err
}

// Delete removes key and reports whether it was present (and unexpired).
func (s *Store[K, V]) Delete(key K) bool {
	sh, h := s.shardOf(key)
	var buf [1]Event[K]
	ok, evs := sh.delete(s, key, h, buf[:0])
	s.emit(evs)
	return ok
}

// Clear drops every entry without events. Counters are kept.
func (s *Store[K, V]) Clear() {
	for _, sh := range s.shards {
		sh.clear()
	}
}

// Len returns the number of entries, expired ones not yet reclaimed
// included.
func (s *Store[K, V]) Len() int {
	n := 0
	for _, sh := range s.shards {
		sh.mu.RLock()
		n += sh.len()
		sh.mu.RUnlock()
	}
	return n
}

// Stats returns the counters and contents, summed over the shards one
// shard at a time.
func (s *Store[K, V]) Stats() Stats {
	st := Stats{MaxEntries: s.maxEntries, MaxBytes: s.maxBytes, Policy: s.policy}
	for _, sh := range s.shards {
		sh.mu.RLock()
		h, m := sh.readCounts()
		st.Hits += h
		st.Misses += m
		st.Evictions += sh.evictions
		st.Expirations += sh.expirations
		st.Entries += sh.len()
		st.Bytes += sh.bytes
		sh.mu.RUnlock()
	}
	return st
}

// Shards returns the number of shards.
func (s *Store[K, V]) Shards() int { return len(s.shards) }

// emit delivers events; the caller holds no lock.
func (s *Store[K, V]) emit(evs []Event[K]) {
	if s.onEvent == nil {
		return
	}
	for _, ev := range evs {
		s.onEvent(ev)
	}
}
