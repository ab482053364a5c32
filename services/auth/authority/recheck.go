package authority

import (
	"context"
	"errors"

	"switchboard/services/auth/store"
)

// MaxRecheck caps the session ids and the accesses of one Recheck.
const MaxRecheck = 10_000

// Access is one user's access to one conversation.
type Access struct {
	UserID         string
	ConversationID string
}

// Recheck returns the sessions that are no longer alive and the accesses
// that are no longer allowed, read from the store and not from the caches,
// for a follower that may have missed their revocations.
func (a *Authority) Recheck(ctx context.Context, sessionIDs []string, accesses []Access) ([]string, []Access, error) {
	if err := checkRecheck(sessionIDs, accesses); err != nil {
		return nil, nil, err
	}
	ended, err := a.endedSessions(ctx, sessionIDs)
	if err != nil {
		return nil, nil, err
	}
	revoked, err := a.revokedAccesses(ctx, accesses)
	if err != nil {
		return nil, nil, err
	}
	return ended, revoked, nil
}

func checkRecheck(sessionIDs []string, accesses []Access) error {
	if len(sessionIDs) > MaxRecheck || len(accesses) > MaxRecheck {
		return invalid("at most %d session ids and %d accesses a call", MaxRecheck, MaxRecheck)
	}
	for _, id := range sessionIDs {
		if err := checkID("session_id", id); err != nil {
			return err
		}
	}
	for _, ac := range accesses {
		if err := checkPair(ac.UserID, ac.ConversationID); err != nil {
			return err
		}
	}
	return nil
}

func (a *Authority) endedSessions(ctx context.Context, ids []string) ([]string, error) {
	var ended []string
	now := a.opts.Now()
	for _, id := range ids {
		_, err := a.opts.Store.Session(ctx, id, now)
		switch {
		case errors.Is(err, store.ErrNotFound):
			ended = append(ended, id)
		case err != nil:
			return nil, unavailable(err)
		}
	}
	return ended, nil
}

func (a *Authority) revokedAccesses(ctx context.Context, accesses []Access) ([]Access, error) {
	var revoked []Access
	for _, ac := range accesses {
		ok, err := a.opts.Store.Allowed(ctx, ac.UserID, ac.ConversationID)
		if err != nil {
			return nil, unavailable(err)
		}
		if !ok {
			revoked = append(revoked, ac)
		}
	}
	return revoked, nil
}
