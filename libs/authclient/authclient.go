package authclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "switchboard/proto/switchboard/auth/v1"
)

// Errors a Session reports; test them with errors.Is.
var (
	// ErrEnded: the auth service refused the session (revoked, expired or
	// reused refresh token); log in again.
	ErrEnded = errors.New("authclient: session ended")
	// ErrClosed: Logout or Close was called.
	ErrClosed = errors.New("authclient: session closed")
)

// Options configure a Session. Zero values take the defaults named.
type Options struct {
	// Margin: refresh this long before the access token expires. 0 = 60s.
	// A token that lives less than twice the margin is refreshed half-way
	// through its life instead.
	Margin time.Duration
	// MinBackoff and MaxBackoff bound the retry delays, which double from
	// MinBackoff with full jitter. 0 = 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one Refresh RPC. 0 = 10s.
	Timeout time.Duration
	// OnChange, if set, hears of new tokens and of the end. While a call
	// is running, newer tokens replace one another: the next call gets the
	// latest, and tokens it replaced are never reported. The end is always
	// reported, last, after the latest token.
	OnChange func(Change)
	// Logger receives retry warnings; nil = discarded.
	Logger *slog.Logger
}

// Change is a new access token, or the end of the session when Err is set.
type Change struct {
	AccessToken string
	ExpiresAt   time.Time
	Err         error
}

// pair is the part of a TokenPair a Session keeps, with the time its
// refresh is due.
type pair struct {
	access  string
	expires time.Time
	refresh string
	due     time.Time
}

// call is one refresh in flight, shared by everyone waiting for it.
type call struct {
	done chan struct{}
	err  error
}

// Session keeps one auth session alive. See the package doc.
type Session struct {
	// Read-only after New.
	client authv1.AuthServiceClient
	opts   Options
	ctx    context.Context // cancelled by Close and Logout
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // the refresher re-plans after a change
	kick   chan struct{} // the notifier has changes to report

	// Guarded by mu.
	mu       sync.Mutex
	cur      pair
	inflight *call
	failedAt time.Time // of the last failed refresh
	ended    error
	newToken *Change // the latest token not yet handed to the notifier
	end      *Change // the end, until handed to the notifier
}

// Login logs in with an email and password and returns a live Session.
func Login(ctx context.Context, client authv1.AuthServiceClient, email, password string, opts Options) (*Session, error) {
	resp, err := client.Login(ctx, &authv1.LoginRequest{Email: email, Password: password})
	if err != nil {
		return nil, fmt.Errorf("authclient: login: %w", err)
	}
	return New(client, resp.GetTokens(), opts)
}

// New keeps alive the session of tokens.
func New(client authv1.AuthServiceClient, tokens *authv1.TokenPair, opts Options) (*Session, error) {
	if tokens.GetAccessToken() == "" || tokens.GetRefreshToken() == "" || tokens.GetAccessExpiresAt() == nil {
		return nil, errors.New("authclient: token pair incomplete")
	}
	setDefault(&opts.Margin, time.Minute)
	setDefault(&opts.MinBackoff, 250*time.Millisecond)
	setDefault(&opts.MaxBackoff, 30*time.Second)
	setDefault(&opts.Timeout, 10*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		client: client, opts: opts, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1),
		kick: make(chan struct{}, 1),
	}
	s.cur = s.fromProto(tokens)
	s.wg.Go(s.refresher)
	s.wg.Go(s.notifier)
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// fromProto keeps a pair received now. Its refresh is due the margin
// before expiry, but no earlier than half-way through its life.
func (s *Session) fromProto(t *authv1.TokenPair) pair {
	p := pair{access: t.GetAccessToken(), expires: t.GetAccessExpiresAt().AsTime(), refresh: t.GetRefreshToken()}
	margin := min(s.opts.Margin, max(time.Until(p.expires)/2, 0))
	p.due = p.expires.Add(-margin)
	return p
}

// Token returns a valid access token, refreshing first when the current
// one is within the margin of its expiry. While a refresh fails for a
// transient reason, the current token is returned as long as it is valid.
func (s *Session) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	cur, ended := s.cur, s.ended
	s.mu.Unlock()
	if ended != nil {
		return "", ended
	}
	if now := time.Now(); now.Before(cur.due) || s.recentlyFailed(now) && now.Before(cur.expires) {
		return cur.access, nil
	}
	err := s.refresh(ctx)
	s.mu.Lock()
	cur, ended = s.cur, s.ended
	s.mu.Unlock()
	switch {
	case ended != nil:
		return "", ended
	case err == nil, time.Now().Before(cur.expires):
		return cur.access, nil
	}
	return "", fmt.Errorf("authclient: token expired and refresh failed: %w", err)
}

// recentlyFailed says whether a refresh failed less than MinBackoff ago;
// Token then serves a still valid token without trying again, so that an
// outage of auth is not met with a refresh per call.
func (s *Session) recentlyFailed(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.failedAt) < s.opts.MinBackoff
}

// Done is closed when the session has ended or been closed.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Err says why the session ended, or nil while it is alive.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// refresh joins the refresh in flight or starts one, and waits for it or
// for ctx. The refresh itself runs on the session's context, so a caller
// giving up does not cancel it for the others.
func (s *Session) refresh(ctx context.Context) error {
	s.mu.Lock()
	if s.ended != nil {
		s.mu.Unlock()
		return s.ended
	}
	c := s.inflight
	if c == nil {
		c = &call{done: make(chan struct{})}
		s.inflight = c
		s.wg.Go(func() { s.run(c) })
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run performs one Refresh RPC for c and publishes its result.
func (s *Session) run(c *call) {
	s.mu.Lock()
	rt := s.cur.refresh
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	resp, err := s.client.Refresh(ctx, &authv1.RefreshRequest{RefreshToken: rt})
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = nil
	switch {
	case err == nil:
		s.cur = s.fromProto(resp.GetTokens())
		s.notifyLocked(Change{AccessToken: s.cur.access, ExpiresAt: s.cur.expires})
		select { // the refresher re-plans for the new expiry
		case s.wake <- struct{}{}:
		default:
		}
	case permanent(err) && s.ended == nil:
		s.endLocked(fmt.Errorf("%w: %s", ErrEnded, status.Code(err)))
		err = s.ended
	case s.ended != nil:
		err = s.ended
	default:
		s.failedAt = time.Now()
		err = fmt.Errorf("authclient: refresh: %s", status.Code(err))
	}
	c.err = err
	close(c.done)
}

// permanent says whether a refresh error ends the session.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.InvalidArgument, codes.PermissionDenied:
		return true
	}
	return false
}

// endLocked ends the session with err and stops the refresher. Caller
// must hold mu.
func (s *Session) endLocked(err error) {
	if s.ended != nil {
		return
	}
	s.ended = err
	s.end = &Change{Err: err}
	s.kickLocked()
	s.cancel()
}

// notifyLocked hands a new token to the notifier, replacing one it has not
// taken yet. Caller must hold mu.
func (s *Session) notifyLocked(c Change) {
	if s.ended != nil {
		return
	}
	s.newToken = &c
	s.kickLocked()
}

// kickLocked wakes the notifier without blocking; one pending wake is
// enough, since the notifier takes every change there is when it wakes.
// Caller must hold mu.
func (s *Session) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// notifier calls OnChange in order, without locks, until it has reported
// the end.
func (s *Session) notifier() {
	for range s.kick {
		s.mu.Lock()
		tok, end := s.newToken, s.end
		s.newToken, s.end = nil, nil
		s.mu.Unlock()
		if tok != nil {
			s.report(*tok)
		}
		if end != nil {
			s.report(*end)
			return
		}
	}
}

func (s *Session) report(c Change) {
	if s.opts.OnChange != nil {
		s.opts.OnChange(c)
	}
}

// refresher sleeps until the refresh is due, refreshes, and retries
// transient failures with backoff, until the session ends. A refresh made
// by a caller wakes it to plan for the new expiry.
func (s *Session) refresher() {
	backoff := s.opts.MinBackoff
	for {
		s.mu.Lock()
		due := s.cur.due
		s.mu.Unlock()
		switch s.sleepUntil(due) {
		case ended:
			return
		case woken:
			continue
		}
		err := s.refresh(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = s.opts.MinBackoff
			continue
		}
		s.opts.Logger.Warn("session refresh failed; retrying", "error", err)
		delay := rand.N(backoff) + time.Millisecond
		backoff = min(2*backoff, s.opts.MaxBackoff)
		if s.sleepUntil(time.Now().Add(delay)) == ended {
			return
		}
	}
}

// Outcomes of sleepUntil.
const (
	fired = iota
	woken
	ended
)

// sleepUntil waits until t (fired), a successful refresh (woken), or the
// end of the session (ended).
func (s *Session) sleepUntil(t time.Time) int {
	timer := time.NewTimer(max(time.Until(t), 0))
	defer timer.Stop()
	select {
	case <-s.ctx.Done():
		return ended
	case <-s.wake:
		return woken
	case <-timer.C:
		return fired
	}
}

// Logout ends the session on the auth service, then closes it. The
// session is closed even when the call fails.
func (s *Session) Logout(ctx context.Context) error {
	s.mu.Lock()
	rt := s.cur.refresh
	s.mu.Unlock()
	_, err := s.client.Logout(ctx, &authv1.LogoutRequest{RefreshToken: rt})
	s.Close()
	if err != nil {
		return fmt.Errorf("authclient: logout: %s", status.Code(err))
	}
	return nil
}

// Close stops refreshing without ending the session on the server, and
// waits for the session's goroutines.
func (s *Session) Close() {
	s.mu.Lock()
	s.endLocked(ErrClosed)
	s.mu.Unlock()
	s.wg.Wait()
}
