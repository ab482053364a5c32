package store

// list is an intrusive, circular, doubly linked list of entries through
// their prev and next fields, with a sentinel root. The front is the most
// recent end. A list must not be copied after init.
type list[K comparable, V any] struct {
	root entry[K, V]
	len  int
}

func (l *list[K, V]) init() {
	l.root.prev = &l.root
	l.root.next = &l.root
	l.len = 0
}

// back returns the least recent entry, or nil when the list is empty.
func (l *list[K, V]) back() *entry[K, V] {
	if l.len == 0 {
		return nil
	}
	return l.root.prev
}

// pushFront links e as the most recent entry.
func (l *list[K, V]) pushFront(e *entry[K, V]) {
	at := &l.root
	e.prev = at
	e.next = at.next
	at.next.prev = e
	at.next = e
	l.len++
}

// remove unlinks e, which must be in l.
func (l *list[K, V]) remove(e *entry[K, V]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev = nil
	e.next = nil
	l.len--
}

// moveToFront makes e, which must be in l, the most recent entry.
func (l *list[K, V]) moveToFront(e *entry[K, V]) {
	if l.root.next == e {
		return
	}
	e.prev.next = e.next
	e.next.prev = e.prev
	at := &l.root
	e.prev = at
	e.next = at.next
	at.next.prev = e
	at.next = e
}

// swapLinks puts nu in old's place in whatever list holds old, with old's
// LFU bucket and TinyLFU region, and leaves old unlinked.
func swapLinks[K comparable, V any](old, nu *entry[K, V]) {
	nu.prev, nu.next = old.prev, old.next
	nu.prev.next = nu
	nu.next.prev = nu
	nu.bucket, nu.queue = old.bucket, old.queue
	old.prev, old.next, old.bucket, old.queue = nil, nil, nil, 0
}
