package authn

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "switchboard/proto/switchboard/auth/v1"
)

// MaxRecheck is how many session ids and how many accesses one Recheck
// call carries at most (auth's own limit).
const MaxRecheck = 10_000

// Access is one user's access to one conversation.
type Access struct {
	User         string
	Conversation string
}

// Held is what a replica holds open: the sessions of its connections, each
// with its user, and the conversation rooms its users are members of.
type Held struct {
	Sessions map[string]string // session → user
	Accesses []Access
}

// recheck asks auth about everything held, retrying with backoff until it
// succeeds, auth does not know the call, or ctx (the stream's) is done.
func (a *Authenticator) recheck(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		err := a.recheckOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			a.opts.Logger.Warn("auth cannot recheck; revocations made while the stream was down stay unseen", "error", err)
			return
		}
		a.opts.Metrics.AuthErrors.Inc()
		a.opts.Logger.Warn("recheck of what is held after the revocation stream connected", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rand.Int64N(int64(backoff)))):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// recheckOnce sends what is held in pages and applies each answer.
func (a *Authenticator) recheckOnce(ctx context.Context) error {
	held := a.opts.Held()
	sessions := make([]string, 0, len(held.Sessions))
	for s := range held.Sessions {
		sessions = append(sessions, s)
	}
	accesses := held.Accesses
	for len(sessions) > 0 || len(accesses) > 0 {
		ns, na := min(len(sessions), MaxRecheck), min(len(accesses), MaxRecheck)
		resp, err := a.recheckPage(ctx, sessions[:ns], accesses[:na])
		if err != nil {
			return err
		}
		for _, s := range resp.GetEndedSessionIds() {
			a.sessionRevoked(held.Sessions[s], s)
		}
		for _, ac := range resp.GetRevokedAccesses() {
			a.accessRevoked(ac.GetUserId(), ac.GetConversationId())
		}
		sessions, accesses = sessions[ns:], accesses[na:]
	}
	return nil
}

func (a *Authenticator) recheckPage(ctx context.Context, sessions []string, accesses []Access) (*authv1.RecheckResponse, error) {
	req := &authv1.RecheckRequest{SessionIds: sessions, Accesses: make([]*authv1.Access, len(accesses))}
	for i, ac := range accesses {
		req.Accesses[i] = &authv1.Access{UserId: ac.User, ConversationId: ac.Conversation}
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	return a.opts.Client.Recheck(ctx, req)
}
