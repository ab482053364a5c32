package authority

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/services/auth/password"
	"switchboard/services/auth/store"
	"switchboard/services/auth/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable, concurrency-safe test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// quietStore wraps a store; with lose set its events never arrive, and
// with fail set Session fails.
type quietStore struct {
	store.Store
	mu   sync.Mutex
	lose bool
	fail bool
}

func (q *quietStore) set(lose, fail bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lose, q.fail = lose, fail
}

func (q *quietStore) Session(ctx context.Context, id string, now time.Time) (store.Session, error) {
	q.mu.Lock()
	fail := q.fail
	q.mu.Unlock()
	if fail {
		return store.Session{}, errors.New("store down")
	}
	return q.Store.Session(ctx, id, now)
}

func (q *quietStore) Subscribe(ctx context.Context) (store.Subscription, error) {
	q.mu.Lock()
	lose := q.lose
	q.mu.Unlock()
	if lose {
		return silentSub{ch: make(chan store.Event)}, nil
	}
	return q.Store.Subscribe(ctx)
}

type silentSub struct{ ch chan store.Event }

func (s silentSub) C() <-chan store.Event { return s.ch }
func (s silentSub) Close()                {}

type fixture struct {
	a     *Authority
	clk   *clock
	store *quietStore
}

// newFixture starts an authority; with lose its revocation events never
// arrive.
func newFixture(t *testing.T, opts Options, lose bool) *fixture {
	t.Helper()
	clk := &clock{t: time.Now().Truncate(time.Second)}
	q := &quietStore{Store: store.NewMemory(), lose: lose}
	keys, err := token.NewKeyring(token.KeyringOptions{Overlap: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := password.NewHasher(password.Params{Time: 1, MemoryKiB: 64, Threads: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Keys, opts.Hasher, opts.Now = q, keys, hasher, clk.Now
	if opts.Issuer == "" {
		opts.Issuer, opts.Audience = "iss", "aud"
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.Close(); q.Close() })
	<-a.Ready()
	return &fixture{a: a, clk: clk, store: q}
}

func (f *fixture) issue(t *testing.T) Pair {
	t.Helper()
	p, err := f.a.IssueSession(context.Background(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) validate(tok string) error {
	_, err := f.a.Validate(context.Background(), tok)
	return err
}

func TestTokenNeverServedFromCacheAfterExpiry(t *testing.T) {
	for _, leeway := range []time.Duration{0, 30 * time.Second} {
		t.Run(leeway.String(), func(t *testing.T) {
			f := newFixture(t, Options{AccessTTL: time.Minute, Leeway: leeway, RevocationBudget: time.Hour}, false)
			p := f.issue(t)
			for range 2 {
				if err := f.validate(p.AccessToken); err != nil {
					t.Fatal(err)
				}
			}
			hits := f.a.tokens.Stats().Hits
			if hits == 0 {
				t.Fatal("second validation did not hit the cache")
			}
			f.clk.Add(p.AccessExpires.Sub(f.clk.Now()) - time.Second)
			if err := f.validate(p.AccessToken); err != nil {
				t.Fatalf("a second before expiry: %v", err)
			}
			hits = f.a.tokens.Stats().Hits
			f.clk.Add(time.Second)
			err := f.validate(p.AccessToken)
			if got := f.a.tokens.Stats().Hits; got != hits {
				t.Fatalf("served from the cache at expiry (hits %d -> %d)", hits, got)
			}
			if leeway == 0 && token.ReasonOf(err) != token.ReasonExpired {
				t.Fatalf("at expiry without leeway: %v", err)
			}
			if leeway > 0 && err != nil {
				t.Fatalf("inside the leeway: %v", err)
			}
			f.clk.Add(leeway)
			if err := f.validate(p.AccessToken); token.ReasonOf(err) != token.ReasonExpired {
				t.Fatalf("past the leeway: %v", err)
			}
		})
	}
}

func TestStoreErrorIsNotCached(t *testing.T) {
	f := newFixture(t, Options{}, true)
	p := f.issue(t)
	f.store.set(false, true)
	if err := f.validate(p.AccessToken); KindOf(err) != Unavailable {
		t.Fatalf("with the store down: %v", err)
	}
	// Revoke with the event lost: a cached success would now be wrong.
	f.store.set(true, false)
	if _, err := f.store.Store.RevokeSession(context.Background(), p.SessionID, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.validate(p.AccessToken); KindOf(err) != Unauthenticated {
		t.Fatalf("after the store came back: %v", err)
	}
}

// With its event lost, a revocation still takes effect once the budget
// has passed.
func TestRevocationBudgetBoundsALostEvent(t *testing.T) {
	budget := 5 * time.Second
	f := newFixture(t, Options{RevocationBudget: budget}, true)
	p := f.issue(t)
	if err := f.validate(p.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Store.RevokeSession(context.Background(), p.SessionID, nil); err != nil {
		t.Fatal(err)
	}
	// Inside the budget the cached state may still answer: that is the
	// documented bound, and shows the cache was in the path.
	f.clk.Add(budget - time.Millisecond)
	if err := f.validate(p.AccessToken); err != nil {
		t.Fatalf("inside the budget: %v", err)
	}
	f.clk.Add(time.Millisecond)
	if err := f.validate(p.AccessToken); KindOf(err) != Unauthenticated {
		t.Fatalf("past the budget: %v", err)
	}
}

// Events drop cache entries at once, whatever the budget.
func TestEventDropsCachedSession(t *testing.T) {
	f := newFixture(t, Options{RevocationBudget: time.Hour}, false)
	p := f.issue(t)
	if err := f.validate(p.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Store.RevokeSession(context.Background(), p.SessionID, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.validate(p.AccessToken) == nil {
		if time.Now().After(deadline) {
			t.Fatal("cached session outlived its revocation event")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheKeyIncludesIssuerAndAudience(t *testing.T) {
	base := newFixture(t, Options{Issuer: "iss", Audience: "aud"}, false)
	others := []*fixture{
		newFixture(t, Options{Issuer: "iss2", Audience: "aud"}, false),
		newFixture(t, Options{Issuer: "iss", Audience: "aud2"}, false),
	}
	for _, o := range others {
		if base.a.tokenKeyOf("t") == o.a.tokenKeyOf("t") {
			t.Fatalf("same cache key under issuer %q audience %q", o.a.opts.Issuer, o.a.opts.Audience)
		}
	}
}

func TestRefreshOutcomesWithClock(t *testing.T) {
	grace := 10 * time.Second
	f := newFixture(t, Options{RefreshGrace: grace, SessionLifetime: time.Hour}, false)
	ctx := context.Background()
	p0 := f.issue(t)
	p1, err := f.a.Refresh(ctx, p0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Add(grace)
	if again, err := f.a.Refresh(ctx, p0.RefreshToken); err != nil || again.RefreshToken != p1.RefreshToken {
		t.Fatalf("at the end of the grace: %v", err)
	}
	f.clk.Add(time.Millisecond)
	if _, err := f.a.Refresh(ctx, p0.RefreshToken); KindOf(err) != Unauthenticated {
		t.Fatalf("after the grace: %v", err)
	}
	if err := f.validate(p1.AccessToken); KindOf(err) != Unauthenticated {
		t.Fatalf("reuse left the session alive: %v", err)
	}
	// The absolute lifetime: refreshing never outlives it.
	q := f.issue(t)
	f.clk.Add(time.Hour - time.Minute)
	q2, err := f.a.Refresh(ctx, q.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if q2.AccessExpires.After(q.SessionExpires) {
		t.Fatal("access token outlives its session")
	}
	f.clk.Add(time.Minute)
	if _, err := f.a.Refresh(ctx, q2.RefreshToken); KindOf(err) != Unauthenticated {
		t.Fatalf("refresh at the session's end: %v", err)
	}
}
