package authority

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bounded "switchboard/libs/store"
	"switchboard/services/auth/password"
	"switchboard/services/auth/store"
	"switchboard/services/auth/token"
)

// Options configure an Authority. Zero values take the defaults named.
type Options struct {
	Store    store.Store      // required
	Keys     *token.Keyring   // required
	Hasher   *password.Hasher // required
	Issuer   string           // required; the iss of every token
	Audience string           // required; the aud of every token
	Leeway   time.Duration    // clock skew allowed; at most token.MaxLeeway
	MaxToken int              // longest access token accepted; 0 = 4096
	Logger   *slog.Logger     // nil = discarded

	AccessTTL       time.Duration // lifetime of an access token; 0 = 15m
	SessionLifetime time.Duration // absolute; 0 = 30 days
	RefreshGrace    time.Duration // previous token honoured; 0 = 10s
	// RevocationBudget bounds how long a cached session state or decision
	// may be stale if a revocation event is lost. 0 = 5s.
	RevocationBudget time.Duration
	// CacheEntries bounds each of the three caches. 0 = 100000; negative =
	// no caches (every Validate verifies and reads the store).
	CacheEntries int

	// LoginPerAccount and LoginPerAddress are attempts allowed per minute
	// (and in a burst). 0 = 5 and 20.
	LoginPerAccount int
	LoginPerAddress int

	// Now is the clock; nil = time.Now. Tests inject a fake one.
	Now func() time.Time
}

func (o *Options) defaults() error {
	if o.Store == nil || o.Keys == nil || o.Hasher == nil {
		return errors.New("authority needs a store, a keyring and a hasher")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.MaxToken, 4096)
	setDefault(&o.AccessTTL, 15*time.Minute)
	setDefault(&o.SessionLifetime, 30*24*time.Hour)
	setDefault(&o.RefreshGrace, 10*time.Second)
	setDefault(&o.RevocationBudget, 5*time.Second)
	setDefault(&o.CacheEntries, 100_000)
	setDefault(&o.LoginPerAccount, 5)
	setDefault(&o.LoginPerAddress, 20)
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Authority is the token authority. See the package doc.
type Authority struct {
	// Read-only after New.
	opts     Options
	log      *slog.Logger
	verifier *token.Verifier
	minter   *token.Minter
	metrics  *metrics
	dummy    string // a password hash to check against for unknown users
	// keyPrefix is issuer, NUL, audience, NUL: the start of every tokens
	// cache key.
	keyPrefix []byte

	// Caches, nil when disabled; safe on their own.
	tokens    *bounded.Store[tokenKey, token.Claims]
	sessions  *bounded.Store[string, sessionState]
	decisions *bounded.Store[decisionKey, struct{}]

	// fillMu orders cache fills (read lock) against invalidations (write
	// lock); gen counts invalidations. See the package doc.
	fillMu sync.RWMutex
	gen    atomic.Uint64

	limiter *limiter

	// Guarded by mu: the watchers of revocations.
	mu       sync.Mutex
	watchers map[*Watcher]struct{}

	// ready is closed once the follower first subscribed.
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns an Authority. Call Run to follow revocations.
func New(opts Options) (*Authority, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ver, err := token.NewVerifier(opts.Keys, token.VerifierOptions{
		Issuer: opts.Issuer, Audience: opts.Audience, Leeway: opts.Leeway,
		MaxBytes: opts.MaxToken, Now: opts.Now,
	})
	if err != nil {
		return nil, err
	}
	a := &Authority{
		opts: opts, log: opts.Logger, verifier: ver,
		minter:   token.NewMinter(opts.Keys, opts.Issuer, opts.Audience),
		limiter:  newLimiter(opts.LoginPerAccount, opts.LoginPerAddress, opts.Now),
		watchers: map[*Watcher]struct{}{},
		ready:    make(chan struct{}),
	}
	a.keyPrefix = []byte(opts.Issuer + "\x00" + opts.Audience + "\x00")
	if err := a.newCaches(); err != nil {
		return nil, err
	}
	a.dummy, err = opts.Hasher.Hash(context.Background(), "switchboard dummy password")
	if err != nil {
		return nil, err
	}
	a.metrics = newMetrics()
	return a, nil
}

// Close releases the caches' background goroutines.
func (a *Authority) Close() {
	if a.tokens != nil {
		a.tokens.Close()
		a.sessions.Close()
		a.decisions.Close()
	}
}

// Ready is closed once revocations are followed; a replica should not
// serve before, since it would not hear of revocations.
func (a *Authority) Ready() <-chan struct{} { return a.ready }

// JWKS returns the public keys for the JWKS document.
func (a *Authority) JWKS() []token.JWK { return a.opts.Keys.JWKS() }
