package authority

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiters bounds the limiters kept per kind; past it the idlest are
// forgotten, which can only give their keys a fresh burst.
const maxLimiters = 100_000

// limiter holds token buckets per account and per address.
type limiter struct {
	perAccount, perAddress int
	now                    func() time.Time

	mu        sync.Mutex
	accounts  map[string]*bucket
	addresses map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

func newLimiter(perAccount, perAddress int, now func() time.Time) *limiter {
	return &limiter{
		perAccount: perAccount, perAddress: perAddress, now: now,
		accounts: map[string]*bucket{}, addresses: map[string]*bucket{},
	}
}

// allow takes one attempt from both buckets, or says how long to wait. An
// attempt refused by one bucket takes nothing from the other.
func (l *limiter) allow(account, address string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	acc := l.bucketLocked(l.accounts, account, l.perAccount, now)
	ra := acc.ReserveN(now, 1)
	if d := ra.DelayFrom(now); d > 0 {
		ra.CancelAt(now)
		return d, false
	}
	if address == "" {
		return 0, true
	}
	addr := l.bucketLocked(l.addresses, address, l.perAddress, now)
	rb := addr.ReserveN(now, 1)
	if d := rb.DelayFrom(now); d > 0 {
		rb.CancelAt(now)
		ra.CancelAt(now)
		return d, false
	}
	return 0, true
}

// bucketLocked returns the limiter of key, making room when the map is
// full. Caller must hold mu.
func (l *limiter) bucketLocked(m map[string]*bucket, key string, perMinute int, now time.Time) *rate.Limiter {
	if b, ok := m[key]; ok {
		b.used = now
		return b.lim
	}
	if len(m) >= maxLimiters {
		l.sweepLocked(m, now)
	}
	b := &bucket{lim: rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute), used: now}
	m[key] = b
	return b.lim
}

// sweepLocked forgets buckets idle long enough to be full again, or, if
// none is, an arbitrary tenth. Caller must hold mu.
func (l *limiter) sweepLocked(m map[string]*bucket, now time.Time) {
	for k, b := range m {
		if now.Sub(b.used) > time.Minute {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < maxLimiters*9/10 {
			break
		}
		delete(m, k)
	}
}
