package store

// lfu is the textbook LFU in O(1): a list of frequency buckets in
// increasing order of use count, each holding the entries of that count
// from the most to the least recently used. The victim is the least
// recently used entry of the lowest count. A count starts at 1 when an
// entry is added and is forgotten when it leaves. The entry being added
// is not a victim while another entry remains: the textbook rule evicts
// among the entries present before the insertion.
type lfu[K comparable, V any] struct {
	head  freqBucket[K, V]  // sentinel; head.next has the lowest count
	free  *freqBucket[K, V] // unlinked buckets kept for reuse
	nfree int
}

// maxFreeBuckets bounds the buckets kept for reuse.
const maxFreeBuckets = 16

// freqBucket holds the entries used exactly count times.
type freqBucket[K comparable, V any] struct {
	count      uint64
	items      list[K, V]
	prev, next *freqBucket[K, V]
}

func newLFU[K comparable, V any]() *lfu[K, V] {
	p := &lfu[K, V]{}
	p.clear()
	return p
}

func (p *lfu[K, V]) clear() {
	p.head.prev = &p.head
	p.head.next = &p.head
	p.free = nil
	p.nfree = 0
}

func (p *lfu[K, V]) add(e *entry[K, V]) {
	b := p.head.next
	if b == &p.head || b.count != 1 {
		b = p.insertAfter(&p.head, 1)
	}
	b.items.pushFront(e)
	e.bucket = b
}

func (p *lfu[K, V]) hit(e *entry[K, V]) {
	cur := e.bucket
	next := cur.next
	if cur.items.len == 1 && (next == &p.head || next.count != cur.count+1) {
		cur.count++ // e is alone: its bucket can take the new count
		return
	}
	if next == &p.head || next.count != cur.count+1 {
		next = p.insertAfter(cur, cur.count+1)
	}
	cur.items.remove(e)
	next.items.pushFront(e)
	e.bucket = next
	if cur.items.len == 0 {
		p.unlink(cur)
	}
}

func (p *lfu[K, V]) update(e *entry[K, V])        { p.hit(e) }
func (p *lfu[K, V]) replace(old, nu *entry[K, V]) { swapLinks(old, nu) }

func (p *lfu[K, V]) remove(e *entry[K, V]) {
	b := e.bucket
	b.items.remove(e)
	e.bucket = nil
	if b.items.len == 0 {
		p.unlink(b)
	}
}

func (p *lfu[K, V]) victim(added *entry[K, V]) *entry[K, V] {
	b := p.head.next
	if b == &p.head {
		return nil
	}
	v := b.items.back()
	if v != added {
		return v
	}
	// The added entry is the most recent of count 1, so it is the back
	// only when alone in the lowest bucket.
	if b.next != &p.head {
		return b.next.items.back()
	}
	return v
}

// insertAfter links a new empty bucket of the given count after at.
func (p *lfu[K, V]) insertAfter(at *freqBucket[K, V], count uint64) *freqBucket[K, V] {
	b := p.free
	if b != nil {
		p.free = b.next
		p.nfree--
	} else {
		b = &freqBucket[K, V]{}
	}
	b.count = count
	b.items.init()
	b.prev = at
	b.next = at.next
	at.next.prev = b
	at.next = b
	return b
}

// unlink drops the empty bucket b and keeps it for reuse.
func (p *lfu[K, V]) unlink(b *freqBucket[K, V]) {
	b.prev.next = b.next
	b.next.prev = b.prev
	b.prev = nil
	b.next = nil
	if p.nfree < maxFreeBuckets {
		b.next = p.free
		p.free = b
		p.nfree++
	}
}
