package authority

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	bounded "switchboard/libs/store"
	"switchboard/services/auth/store"
	"switchboard/services/auth/token"
)

// tokenKey is SHA-256 over issuer, audience and token, so that a result is
// never found under another issuer or audience.
type tokenKey [sha256.Size]byte

// decisionKey names one authorization decision.
type decisionKey struct{ user, conversation string }

// sessionState is what the sessions cache knows of a session.
type sessionState struct {
	userID  string
	revoked bool
}

// clockFunc adapts a func to bounded.Clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

func (a *Authority) newCaches() error {
	n := a.opts.CacheEntries
	if n < 0 {
		return nil
	}
	clk := clockFunc(a.opts.Now)
	var err1, err2, err3 error
	a.tokens, err1 = bounded.New(bounded.Options[tokenKey, token.Claims]{
		MaxEntries: n, Clock: clk,
	})
	a.sessions, err2 = bounded.New(bounded.Options[string, sessionState]{
		MaxEntries: n, Clock: clk,
	})
	a.decisions, err3 = bounded.New(bounded.Options[decisionKey, struct{}]{
		MaxEntries: n, Clock: clk,
	})
	if err := errors.Join(err1, err2, err3); err != nil {
		a.Close()
		return err
	}
	return nil
}

func (a *Authority) tokenKeyOf(tok string) tokenKey {
	var arr [2048]byte // most tokens fit: no allocation
	buf := append(arr[:0], a.keyPrefix...)
	return sha256.Sum256(append(buf, tok...))
}

// verify checks an access token's signature and claims, through the tokens
// cache. A hit is re-checked against exp, whatever the cache says.
func (a *Authority) verify(tok string) (token.Claims, bool, error) {
	if a.tokens == nil || len(tok) > a.opts.MaxToken {
		c, err := a.verifier.Verify(tok)
		return c, false, err
	}
	key := a.tokenKeyOf(tok)
	now := a.opts.Now()
	if c, ok := a.tokens.Get(key); ok && now.Before(c.ExpiresAt) {
		return c, true, nil
	}
	c, err := a.verifier.Verify(tok)
	if err != nil {
		return c, false, err
	}
	if ttl := c.ExpiresAt.Sub(now); ttl > 0 {
		a.tokens.SetWithTTL(key, c, ttl)
	}
	return c, false, nil
}

// sessionAlive says whether a session is live and belongs to userID,
// through the sessions cache. A store error is returned, never cached.
func (a *Authority) sessionAlive(ctx context.Context, sid, userID string) (bool, error) {
	if a.sessions != nil {
		if st, ok := a.sessions.Get(sid); ok {
			return !st.revoked && st.userID == userID, nil
		}
	}
	gen := a.gen.Load()
	now := a.opts.Now()
	s, err := a.opts.Store.Session(ctx, sid, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.fill(gen, func() { a.sessions.SetWithTTL(sid, sessionState{revoked: true}, a.opts.RevocationBudget) })
		return false, nil
	case err != nil:
		return false, err
	}
	ttl := min(a.opts.RevocationBudget, s.Expires.Sub(now))
	if ttl > 0 {
		a.fill(gen, func() { a.sessions.SetWithTTL(sid, sessionState{userID: s.UserID}, ttl) })
	}
	return s.UserID == userID, nil
}

// fill runs set unless caches are off or an invalidation happened since
// gen was read.
func (a *Authority) fill(gen uint64, set func()) {
	if a.sessions == nil {
		return
	}
	a.fillMu.RLock()
	defer a.fillMu.RUnlock()
	if a.gen.Load() == gen {
		set()
	}
}

// invalidate drops what an event names, or everything on a Reset.
func (a *Authority) invalidate(e store.Event) {
	if a.sessions == nil {
		return
	}
	a.fillMu.Lock()
	defer a.fillMu.Unlock()
	a.gen.Add(1)
	switch e.Kind {
	case store.SessionRevoked:
		a.sessions.SetWithTTL(e.SessionID, sessionState{revoked: true}, a.opts.RevocationBudget)
	case store.AccessRevoked:
		a.decisions.Delete(decisionKey{e.UserID, e.ConversationID})
	default:
		a.tokens.Clear()
		a.sessions.Clear()
		a.decisions.Clear()
	}
}
