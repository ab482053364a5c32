package authority

import (
	"context"
	"math/rand/v2"
	"time"

	"switchboard/services/auth/store"
)

// watcherBuffer is how far a watcher may lag before it is ended.
const watcherBuffer = 1024

// Watcher follows revocations from the moment Watch returned it.
type Watcher struct {
	a  *Authority
	ch chan store.Event
}

// C delivers events; it is closed when the watcher ends: Close, a watcher
// too slow to keep up, or a gap in the follower's own subscription. A
// closed channel means events may have been missed.
func (w *Watcher) C() <-chan store.Event { return w.ch }

// Close ends the watcher.
func (w *Watcher) Close() {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	w.a.endLocked(w)
}

// Watch returns a new Watcher.
func (a *Authority) Watch() *Watcher {
	w := &Watcher{a: a, ch: make(chan store.Event, watcherBuffer)}
	a.mu.Lock()
	a.watchers[w] = struct{}{}
	a.mu.Unlock()
	a.metrics.watchers.Inc()
	return w
}

// endLocked ends w once. Caller must hold mu.
func (a *Authority) endLocked(w *Watcher) {
	if _, ok := a.watchers[w]; ok {
		delete(a.watchers, w)
		close(w.ch)
		a.metrics.watchers.Dec()
	}
}

// broadcast hands e to every watcher without blocking; a Reset ends them
// all instead, since they may have missed events.
func (a *Authority) broadcast(e store.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for w := range a.watchers {
		if e.Kind == store.Reset {
			a.endLocked(w)
			continue
		}
		select {
		case w.ch <- e:
		default:
			a.endLocked(w)
		}
	}
}

// Run follows the store's revocations until ctx ends: it subscribes,
// retrying with backoff, applies every event to the caches and hands it to
// the watchers. Every (re)subscription starts from a Reset.
func (a *Authority) Run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		sub, err := a.opts.Store.Subscribe(ctx)
		if err != nil {
			a.log.Warn("cannot follow revocations; retrying", "error", err, "in", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		a.apply(store.Event{Kind: store.Reset})
		a.readyOnce.Do(func() { close(a.ready) })
		a.follow(ctx, sub)
		sub.Close()
	}
	a.broadcast(store.Event{Kind: store.Reset})
}

// follow applies events until the subscription or ctx ends.
func (a *Authority) follow(ctx context.Context, sub store.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C():
			if !ok {
				a.log.Warn("revocation subscription ended; caches cleared")
				a.apply(store.Event{Kind: store.Reset})
				return
			}
			a.apply(e)
		}
	}
}

func (a *Authority) apply(e store.Event) {
	a.invalidate(e)
	a.broadcast(e)
	a.metrics.revocations.WithLabelValues(e.Kind.String()).Inc()
}

// sleep waits d with full jitter, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(rand.N(d) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
