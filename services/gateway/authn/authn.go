package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"switchboard/libs/store"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/telemetry"
)

// Errors of Validate and Authorize.
var (
	// ErrBadToken: auth refused the token.
	ErrBadToken = errors.New("token refused by auth")
	// ErrUnavailable: auth did not answer.
	ErrUnavailable = errors.New("auth unavailable")
)

// MaxTokenBytes caps a token's length; longer ones are refused unread.
const MaxTokenBytes = 8 << 10

// Identity is what a valid token says.
type Identity struct {
	User    string
	Session string
	Expires time.Time
}

// Options configure New.
type Options struct {
	// Client calls auth; it must carry the service credential, since
	// WatchRevocations is a trusted call. Required.
	Client authv1.AuthServiceClient
	// CacheEntries bounds the validation cache. Zero: 100,000.
	CacheEntries int
	// CacheTTL bounds how long a validation is reused. Zero: one minute.
	CacheTTL time.Duration
	// CallTimeout bounds one call to auth. Zero: 3 seconds.
	CallTimeout time.Duration
	// OnSessionRevoked and OnAccessRevoked receive revocations. Required
	// for Watch.
	OnSessionRevoked func(user, session string)
	OnAccessRevoked  func(user, conversation string)
	// Held lists what the replica holds open, for the recheck after the
	// revocation stream came back. Nil: nothing is held.
	Held    func() Held
	Metrics *telemetry.Metrics
	Logger  *slog.Logger
}

type key [sha256.Size]byte

// Authenticator validates tokens through auth, with a cache.
type Authenticator struct {
	// Read-only after construction.
	opts    Options
	cache   *store.Store[key, Identity]
	revoked *store.Store[string, struct{}] // sessions revoked lately

	// Safe on its own.
	watching atomic.Bool
	// epoch counts the changes of watching; a validation asked of auth
	// under one epoch is not cached under another, since revocations
	// between the two may not have been seen.
	epoch atomic.Uint64
}

// New returns an Authenticator; Close releases its caches.
func New(opts Options) (*Authenticator, error) {
	if opts.CacheEntries == 0 {
		opts.CacheEntries = 100_000
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 3 * time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.Discard()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Held == nil {
		opts.Held = func() Held { return Held{} }
	}
	cache, err := store.New(store.Options[key, Identity]{
		MaxEntries: opts.CacheEntries, DefaultTTL: opts.CacheTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("validation cache: %w", err)
	}
	revoked, err := store.New(store.Options[string, struct{}]{
		Policy: store.FIFO, MaxEntries: opts.CacheEntries, DefaultTTL: opts.CacheTTL,
	})
	if err != nil {
		cache.Close()
		return nil, fmt.Errorf("revocation cache: %w", err)
	}
	return &Authenticator{opts: opts, cache: cache, revoked: revoked}, nil
}

// Close stops the caches' background work.
func (a *Authenticator) Close() {
	a.cache.Close()
	a.revoked.Close()
}

// Validate says whose token is, from the cache when it may.
func (a *Authenticator) Validate(ctx context.Context, token string) (Identity, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return Identity{}, ErrBadToken
	}
	k := key(sha256.Sum256([]byte(token)))
	if id, ok := a.cached(k); ok {
		a.opts.Metrics.AuthCache.WithLabelValues("hit").Inc()
		return id, nil
	}
	a.opts.Metrics.AuthCache.WithLabelValues("miss").Inc()

	epoch := a.epoch.Load()
	id, err := a.validate(ctx, token)
	if err != nil {
		return Identity{}, err
	}
	a.remember(k, id, epoch)
	return id, nil
}

func (a *Authenticator) cached(k key) (Identity, bool) {
	if !a.watching.Load() {
		return Identity{}, false
	}
	id, ok := a.cache.Get(k)
	if !ok || !time.Now().Before(id.Expires) {
		return Identity{}, false
	}
	if _, gone := a.revoked.Get(id.Session); gone {
		a.cache.Delete(k)
		return Identity{}, false
	}
	return id, true
}

// remember caches id, asked of auth under epoch, if the cache is trusted
// and has been since.
func (a *Authenticator) remember(k key, id Identity, epoch uint64) {
	if !a.watching.Load() || a.epoch.Load() != epoch {
		return
	}
	if _, gone := a.revoked.Get(id.Session); gone {
		return
	}
	ttl := min(time.Until(id.Expires), a.opts.CacheTTL)
	if ttl > 0 {
		a.cache.SetWithTTL(k, id, ttl)
	}
}

func (a *Authenticator) validate(ctx context.Context, token string) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	resp, err := a.opts.Client.Validate(ctx, &authv1.ValidateRequest{AccessToken: token})
	if err != nil {
		return Identity{}, a.classify(err)
	}
	id := Identity{User: resp.GetUserId(), Session: resp.GetSessionId(), Expires: resp.GetExpiresAt().AsTime()}
	if id.User == "" || !time.Now().Before(id.Expires) {
		return Identity{}, ErrBadToken
	}
	return id, nil
}

// Authorize asks auth whether user may see conversation. Answers are not
// cached, so a revocation counts at the next join.
func (a *Authenticator) Authorize(ctx context.Context, user, conversation string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	resp, err := a.opts.Client.Authorize(ctx, &authv1.AuthorizeRequest{
		UserId: user, ConversationId: conversation,
	})
	if err != nil {
		if errors.Is(a.classify(err), ErrBadToken) {
			return false, nil
		}
		return false, ErrUnavailable
	}
	return resp.GetAllowed(), nil
}

// Conversations asks auth which conversations user may see.
func (a *Authenticator) Conversations(ctx context.Context, user string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	resp, err := a.opts.Client.ListConversations(ctx, &authv1.ListConversationsRequest{UserId: user})
	if err != nil {
		a.opts.Metrics.AuthErrors.Inc()
		return nil, ErrUnavailable
	}
	return resp.GetConversationIds(), nil
}

// classify maps an auth error to ErrBadToken or ErrUnavailable.
func (a *Authenticator) classify(err error) error {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.InvalidArgument, codes.PermissionDenied, codes.NotFound:
		return ErrBadToken
	}
	a.opts.Metrics.AuthErrors.Inc()
	return ErrUnavailable
}

// Watch follows auth's revocations until ctx is done, reconnecting with
// backoff. The cache is in use only while a stream is connected and its
// headers have arrived. Every stream starts with a recheck of what is held,
// since revocations made before it registered were not streamed: after a
// break, and on the first stream too, which connections accepted before it
// may precede (at a replica's start nothing is held and nothing is asked).
func (a *Authenticator) Watch(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if a.watchOnce(ctx) {
			backoff = 100 * time.Millisecond
		}
		wait := time.Duration(rand.Int64N(int64(backoff)))
		backoff = min(backoff*2, 10*time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// watchOnce reads one revocation stream until it fails and reports whether
// it received anything. The cache is trusted only once the stream's
// response headers have arrived: auth sends them when this watcher is
// registered, and a revocation made before then would not be seen. What
// is held is then rechecked on another goroutine while the stream lasts.
func (a *Authenticator) watchOnce(ctx context.Context) bool {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	stream, err := a.opts.Client.WatchRevocations(ctx, &authv1.WatchRevocationsRequest{})
	if err != nil {
		a.opts.Logger.Warn("watch revocations", "error", err)
		return false
	}
	// grpc-go's Header returns no metadata and no error when the stream
	// ended before any headers; Recv then says why.
	if md, err := stream.Header(); err != nil || md == nil {
		if err == nil {
			_, err = stream.Recv()
		}
		if ctx.Err() == nil {
			a.opts.Logger.Warn("watch revocations", "error", err)
		}
		return false
	}
	a.cache.Clear()
	a.trust(true)
	defer func() {
		a.trust(false)
		a.cache.Clear()
	}()
	wg.Go(func() { a.recheck(ctx) })

	got := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				a.opts.Logger.Warn("revocation stream ended", "error", err)
			}
			return got
		}
		got = true
		a.apply(resp)
	}
}

func (a *Authenticator) apply(resp *authv1.WatchRevocationsResponse) {
	if s := resp.GetSession(); s != nil {
		a.sessionRevoked(s.GetUserId(), s.GetSessionId())
	}
	if ac := resp.GetAccess(); ac != nil {
		a.accessRevoked(ac.GetUserId(), ac.GetConversationId())
	}
}

// sessionRevoked applies the end of a session, streamed or rechecked.
func (a *Authenticator) sessionRevoked(user, session string) {
	a.opts.Metrics.Revocations.WithLabelValues("session").Inc()
	a.revoked.Set(session, struct{}{})
	a.opts.OnSessionRevoked(user, session)
}

// accessRevoked applies the end of an access, streamed or rechecked.
func (a *Authenticator) accessRevoked(user, conversation string) {
	a.opts.Metrics.Revocations.WithLabelValues("access").Inc()
	a.opts.OnAccessRevoked(user, conversation)
}

// trust turns the cache's use on or off and starts a new epoch.
func (a *Authenticator) trust(on bool) {
	a.epoch.Add(1)
	a.watching.Store(on)
}

// Watching reports whether the revocation stream is connected and
// registered, that is whether the cache is in use.
func (a *Authenticator) Watching() bool { return a.watching.Load() }
