package main

import (
	"sync"
	"sync/atomic"
	"time"

	"switchboard/libs/store"
)

// event is one store event on its way to a watcher.
type event struct {
	kind store.EventKind
	key  string
	at   time.Time
	// dropped counts the events this watcher lost just before this one.
	dropped uint64
}

// hub is the set of watchers of one cache. The store's OnEvent hook calls
// publish, which never blocks: a watcher whose buffer is full loses the
// event, and the count of lost events travels with its next event.
type hub struct {
	// Read-only after construction.
	now func() time.Time

	// Safe on their own.
	count   atomic.Int64  // len(set), read without mu on every event
	dropped atomic.Uint64 // events lost over all watchers, for metrics

	mu  sync.RWMutex
	set map[*watcher]struct{} // guarded by mu
}

func newHub(now func() time.Time) *hub {
	return &hub{now: now, set: make(map[*watcher]struct{})}
}

// add registers a watcher holding up to buffer events.
func (h *hub) add(buffer int) *watcher {
	w := &watcher{ch: make(chan event, buffer)}
	h.mu.Lock()
	h.set[w] = struct{}{}
	h.count.Store(int64(len(h.set)))
	h.mu.Unlock()
	return w
}

// remove unregisters w; it receives nothing more.
func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	delete(h.set, w)
	h.count.Store(int64(len(h.set)))
	h.mu.Unlock()
}

// publish offers ev to every watcher. It is the store's OnEvent hook, so it
// must not block: offer takes each watcher's lock only for a channel send
// that cannot wait.
func (h *hub) publish(ev store.Event[string]) {
	if h.count.Load() == 0 {
		return
	}
	e := event{kind: ev.Kind, key: ev.Key, at: h.now()}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for w := range h.set {
		if !w.offer(e) {
			h.dropped.Add(1)
		}
	}
}

// watcher is one Watch stream's bounded buffer of events.
type watcher struct {
	ch chan event // buffered; its capacity is the bound

	mu      sync.Mutex
	pending uint64 // events lost since the last one queued; guarded by mu
}

// offer queues e, or counts it lost when the buffer is full. It reports
// whether e was queued.
func (w *watcher) offer(e event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	e.dropped = w.pending
	select {
	case w.ch <- e:
		w.pending = 0
		return true
	default:
		w.pending++
		return false
	}
}

// gap returns, and forgets, the events lost after the last one queued, but
// only once the buffer is empty: until then the count rides on the next
// queued event instead. The stream calls it whenever it has drained the
// buffer, so a loss is reported even when no event follows it.
func (w *watcher) gap() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ch) > 0 {
		return 0
	}
	n := w.pending
	w.pending = 0
	return n
}
