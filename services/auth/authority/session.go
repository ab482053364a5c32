package authority

import (
	"context"
	"errors"
	"time"

	"switchboard/services/auth/store"
	"switchboard/services/auth/token"
)

// Pair is what a session hands its client.
type Pair struct {
	AccessToken    string
	AccessExpires  time.Time
	RefreshToken   string
	SessionExpires time.Time
	UserID         string
	SessionID      string
}

// Identity is what a valid access token says.
type Identity struct {
	UserID    string
	SessionID string
	Expires   time.Time
}

// Login checks an email and password and opens a session. address is the
// client's, for rate limiting; "" skips the per-address limit.
func (a *Authority) Login(ctx context.Context, email, pw, address string) (Pair, error) {
	start := a.opts.Now()
	p, err := a.login(ctx, email, pw, address)
	a.metrics.login(err, a.opts.Now().Sub(start))
	return p, err
}

func (a *Authority) login(ctx context.Context, email, pw, address string) (Pair, error) {
	email, err := normalEmail(email)
	if err != nil {
		return Pair{}, err
	}
	if len(pw) > maxPassword {
		return Pair{}, invalid("password must be at most %d bytes", maxPassword)
	}
	if wait, ok := a.limiter.allow(email, address); !ok {
		return Pair{}, &Error{Kind: RateLimited, Msg: "too many login attempts", RetryAfter: wait}
	}
	u, err := a.opts.Store.UserByEmail(ctx, email)
	stored := u.PasswordHash
	switch {
	case errors.Is(err, store.ErrNotFound):
		stored = a.dummy // the same work as for a real user
	case err != nil:
		return Pair{}, unavailable(err)
	}
	ok, err := a.opts.Hasher.Verify(ctx, pw, stored)
	if err != nil && ctx.Err() != nil {
		return Pair{}, &Error{Kind: Unavailable, Msg: "login cancelled", Err: err}
	}
	if err != nil || !ok || u.ID == "" {
		return Pair{}, unauthenticated(msgBadCredentials)
	}
	return a.open(ctx, u.ID)
}

// IssueSession opens a session for a user a trusted backend vouches for.
// The user need not have a password here.
func (a *Authority) IssueSession(ctx context.Context, userID string) (Pair, error) {
	if err := checkID("user_id", userID); err != nil {
		return Pair{}, err
	}
	return a.open(ctx, userID)
}

// open creates a session and its first pair.
func (a *Authority) open(ctx context.Context, userID string) (Pair, error) {
	sid, err := token.NewID()
	if err != nil {
		return Pair{}, unavailable(err)
	}
	rt, err := token.NewRefresh(sid)
	if err != nil {
		return Pair{}, unavailable(err)
	}
	now := a.opts.Now().Truncate(time.Millisecond)
	s := store.Session{ID: sid, UserID: userID, Created: now, Expires: now.Add(a.opts.SessionLifetime)}
	if err := a.opts.Store.CreateSession(ctx, s, store.Hash(token.HashRefresh(rt))); err != nil {
		return Pair{}, unavailable(err)
	}
	return a.pair(s, rt)
}

// pair mints an access token for s and pairs it with refresh token rt.
func (a *Authority) pair(s store.Session, rt string) (Pair, error) {
	now := a.opts.Now()
	exp := now.Add(a.opts.AccessTTL)
	if s.Expires.Before(exp) {
		exp = s.Expires
	}
	exp = exp.Truncate(time.Second) // what the token's NumericDate says
	at, err := a.minter.Mint(token.Claims{
		UserID: s.UserID, SessionID: s.ID, IssuedAt: now, ExpiresAt: exp,
	})
	if err != nil {
		return Pair{}, &Error{Kind: Unavailable, Msg: "cannot sign tokens", Err: err}
	}
	return Pair{
		AccessToken: at, AccessExpires: exp, RefreshToken: rt,
		SessionExpires: s.Expires, UserID: s.UserID, SessionID: s.ID,
	}, nil
}

// Validate checks an access token: signature and claims, then that its
// session is still alive. Both steps go through the caches.
func (a *Authority) Validate(ctx context.Context, tok string) (Identity, error) {
	start := a.opts.Now()
	id, hit, err := a.validate(ctx, tok)
	a.metrics.validation(err, hit, a.opts.Now().Sub(start))
	return id, err
}

func (a *Authority) validate(ctx context.Context, tok string) (Identity, bool, error) {
	c, hit, err := a.verify(tok)
	if err != nil {
		return Identity{}, false, &Error{Kind: Unauthenticated, Msg: msgBadToken, Err: err}
	}
	alive, err := a.sessionAlive(ctx, c.SessionID, c.UserID)
	if err != nil {
		return Identity{}, false, unavailable(err)
	}
	if !alive {
		return Identity{}, false, &Error{Kind: Unauthenticated, Msg: msgBadToken, Err: errRevoked}
	}
	return Identity{UserID: c.UserID, SessionID: c.SessionID, Expires: c.ExpiresAt}, hit, nil
}

var errRevoked = errors.New("session revoked or expired")

// Refresh trades a refresh token for a new pair. See store.Outcome for
// what each presentation does.
func (a *Authority) Refresh(ctx context.Context, rt string) (Pair, error) {
	start := a.opts.Now()
	p, outcome, err := a.refresh(ctx, rt)
	a.metrics.refresh(outcome, err, a.opts.Now().Sub(start))
	return p, err
}

func (a *Authority) refresh(ctx context.Context, rt string) (Pair, string, error) {
	sid, err := token.ParseRefresh(rt)
	if err != nil {
		return Pair{}, "malformed", unauthenticated(msgBadRefresh)
	}
	next, err := token.NewRefresh(sid)
	if err != nil {
		return Pair{}, "error", unavailable(err)
	}
	sealed, err := token.Seal(rt, next)
	if err != nil {
		return Pair{}, "error", unavailable(err)
	}
	res, err := a.opts.Store.Rotate(ctx, store.Rotation{
		SessionID: sid, Presented: store.Hash(token.HashRefresh(rt)),
		Next: store.Hash(token.HashRefresh(next)), NextSealed: sealed,
		Now: a.opts.Now(), Grace: a.opts.RefreshGrace,
	})
	if err != nil {
		return Pair{}, "error", unavailable(err)
	}
	outcome := res.Outcome.String()
	switch res.Outcome {
	case store.Rotated:
	case store.Replayed:
		if next, err = token.Open(rt, res.Sealed); err != nil {
			return Pair{}, "error", unavailable(err)
		}
	case store.Reused:
		a.invalidate(store.Event{Kind: store.SessionRevoked, SessionID: sid, UserID: res.Session.UserID})
		a.log.Warn("refresh token reused; session revoked", "session", sid, "user", res.Session.UserID)
		return Pair{}, outcome, unauthenticated(msgBadRefresh)
	default:
		return Pair{}, outcome, unauthenticated(msgBadRefresh)
	}
	p, err := a.pair(res.Session, next)
	if err != nil {
		return Pair{}, "error", err
	}
	return p, outcome, nil
}

// Logout ends the session of a refresh or access token (refresh token
// first when both are given), or every session of its user with all.
func (a *Authority) Logout(ctx context.Context, refreshToken, accessToken string, all bool) error {
	var userID, sid string
	switch {
	case refreshToken != "":
		id, err := token.ParseRefresh(refreshToken)
		if err != nil {
			return unauthenticated(msgBadRefresh)
		}
		h := store.Hash(token.HashRefresh(refreshToken))
		s, err := a.opts.Store.RevokeSession(ctx, id, &h)
		if errors.Is(err, store.ErrNotFound) {
			return unauthenticated(msgBadRefresh)
		} else if err != nil {
			return unavailable(err)
		}
		userID, sid = s.UserID, s.ID
		a.invalidate(store.Event{Kind: store.SessionRevoked, SessionID: sid, UserID: userID})
	case accessToken != "":
		id, err := a.Validate(ctx, accessToken)
		if err != nil {
			return err
		}
		userID, sid = id.UserID, id.SessionID
		if !all {
			return a.revokeSession(ctx, sid, userID)
		}
	default:
		return invalid("logout needs a refresh_token or an access_token")
	}
	if all {
		_, err := a.RevokeSessions(ctx, userID)
		return err
	}
	return nil
}

func (a *Authority) revokeSession(ctx context.Context, sid, userID string) error {
	_, err := a.opts.Store.RevokeSession(ctx, sid, nil)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return unavailable(err)
	}
	a.invalidate(store.Event{Kind: store.SessionRevoked, SessionID: sid, UserID: userID})
	return nil
}

// RevokeSessions ends every session of a user.
func (a *Authority) RevokeSessions(ctx context.Context, userID string) (int, error) {
	if err := checkID("user_id", userID); err != nil {
		return 0, err
	}
	ids, err := a.opts.Store.RevokeUserSessions(ctx, userID)
	if err != nil {
		return 0, unavailable(err)
	}
	// The store's events drop each session from every replica's caches;
	// this replica does not wait for them.
	for _, sid := range ids {
		a.invalidate(store.Event{Kind: store.SessionRevoked, SessionID: sid, UserID: userID})
	}
	return len(ids), nil
}

// CreateUser adds a user with a password; an empty userID is chosen here.
func (a *Authority) CreateUser(ctx context.Context, email, pw, userID string) (string, error) {
	email, err := normalEmail(email)
	if err != nil {
		return "", err
	}
	if len(pw) < minPassword || len(pw) > maxPassword {
		return "", invalid("password must be %d to %d bytes", minPassword, maxPassword)
	}
	if userID == "" {
		if userID, err = token.NewID(); err != nil {
			return "", unavailable(err)
		}
	} else if err := checkID("user_id", userID); err != nil {
		return "", err
	}
	hash, err := a.opts.Hasher.Hash(ctx, pw)
	if err != nil {
		return "", unavailable(err)
	}
	err = a.opts.Store.CreateUser(ctx, store.User{ID: userID, Email: email, PasswordHash: hash})
	if errors.Is(err, store.ErrExists) {
		return "", &Error{Kind: AlreadyExists, Msg: "a user with this email or id exists"}
	} else if err != nil {
		return "", unavailable(err)
	}
	return userID, nil
}
