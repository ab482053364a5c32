package store

import "fmt"

// Policy names an eviction rule.
type Policy string

// The eviction policies. LRU, LFU and FIFO are exact within a shard;
// TinyLFU is approximate by design (see the package doc).
const (
	LRU     Policy = "lru"     // evict the least recently used
	LFU     Policy = "lfu"     // evict the least frequently used; ties: least recent
	FIFO    Policy = "fifo"    // evict the oldest insertion; reads change nothing
	TinyLFU Policy = "tinylfu" // adaptive W-TinyLFU; the recommended default
)

// ParsePolicy reads "lru", "lfu", "fifo" or "tinylfu".
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case LRU, LFU, FIFO, TinyLFU:
		return p, nil
	}
	return "", fmt.Errorf("store: unknown policy %q (want lru, lfu, fifo or tinylfu)", s)
}

// policy orders the entries of one shard for eviction. Every method is
// called with the shard's lock held and runs in O(1) amortised time.
type policy[K comparable, V any] interface {
	// add records a new entry.
	add(e *entry[K, V])
	// hit records a use of e: a read hit, or a Set of its key.
	hit(e *entry[K, V])
	// update records a Set of a key already present.
	update(e *entry[K, V])
	// replace puts nu, a new entry for the same key, in old's place.
	replace(old, nu *entry[K, V])
	// remove forgets e, whatever the reason it leaves.
	remove(e *entry[K, V])
	// victim returns the entry to evict next, or nil when there is none.
	// added, if not nil, is the entry the current Set added: the exact
	// policies pick it only when no other entry is left.
	victim(added *entry[K, V]) *entry[K, V]
	// clear forgets every entry.
	clear()
}

func newPolicy[K comparable, V any](p Policy, maxEntries int, reads func() (hits, misses uint64)) policy[K, V] {
	switch p {
	case LRU:
		return newLRU[K, V](false)
	case FIFO:
		return newLRU[K, V](true)
	case LFU:
		return newLFU[K, V]()
	default:
		return newTinyLFU[K, V](maxEntries, reads)
	}
}

// lru is LRU, or FIFO when fifo is set: one list, front the newest.
type lru[K comparable, V any] struct {
	l    list[K, V]
	fifo bool
}

func newLRU[K comparable, V any](fifo bool) *lru[K, V] {
	p := &lru[K, V]{fifo: fifo}
	p.l.init()
	return p
}

func (p *lru[K, V]) add(e *entry[K, V]) { p.l.pushFront(e) }

func (p *lru[K, V]) hit(e *entry[K, V]) {
	if !p.fifo {
		p.l.moveToFront(e)
	}
}

func (p *lru[K, V]) update(e *entry[K, V])            { p.hit(e) }
func (p *lru[K, V]) replace(old, nu *entry[K, V])     { swapLinks(old, nu) }
func (p *lru[K, V]) remove(e *entry[K, V])            { p.l.remove(e) }
func (p *lru[K, V]) victim(*entry[K, V]) *entry[K, V] { return p.l.back() }
func (p *lru[K, V]) clear()                           { p.l.init() }
