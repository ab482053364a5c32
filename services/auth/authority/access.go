package authority

import "context"

// Authorize says whether a user may see a conversation. Only "allowed" is
// cached; see the package doc.
func (a *Authority) Authorize(ctx context.Context, userID, conversationID string) (bool, error) {
	if err := checkPair(userID, conversationID); err != nil {
		return false, err
	}
	key := decisionKey{userID, conversationID}
	if a.decisions != nil {
		if _, ok := a.decisions.Get(key); ok {
			return true, nil
		}
	}
	gen := a.gen.Load()
	ok, err := a.opts.Store.Allowed(ctx, userID, conversationID)
	if err != nil {
		return false, unavailable(err)
	}
	if ok {
		a.fill(gen, func() { a.decisions.SetWithTTL(key, struct{}{}, a.opts.RevocationBudget) })
	}
	return ok, nil
}

// GrantAccess lets a user see a conversation.
func (a *Authority) GrantAccess(ctx context.Context, userID, conversationID string) error {
	if err := checkPair(userID, conversationID); err != nil {
		return err
	}
	if err := a.opts.Store.Grant(ctx, userID, conversationID); err != nil {
		return unavailable(err)
	}
	return nil
}

// RevokeAccess stops a user seeing a conversation; every replica and
// watcher hears of it.
func (a *Authority) RevokeAccess(ctx context.Context, userID, conversationID string) error {
	if err := checkPair(userID, conversationID); err != nil {
		return err
	}
	if _, err := a.opts.Store.RevokeAccess(ctx, userID, conversationID); err != nil {
		return unavailable(err)
	}
	a.invalidateDecision(userID, conversationID)
	return nil
}

func (a *Authority) invalidateDecision(userID, conversationID string) {
	if a.decisions == nil {
		return
	}
	a.fillMu.Lock()
	defer a.fillMu.Unlock()
	a.gen.Add(1)
	a.decisions.Delete(decisionKey{userID, conversationID})
}

// Members lists up to MaxList users who may see a conversation.
func (a *Authority) Members(ctx context.Context, conversationID string) ([]string, error) {
	if err := checkID("conversation_id", conversationID); err != nil {
		return nil, err
	}
	m, err := a.opts.Store.Members(ctx, conversationID, MaxList)
	if err != nil {
		return nil, unavailable(err)
	}
	return m, nil
}

// Conversations lists up to MaxList conversations a user may see.
func (a *Authority) Conversations(ctx context.Context, userID string) ([]string, error) {
	if err := checkID("user_id", userID); err != nil {
		return nil, err
	}
	c, err := a.opts.Store.Conversations(ctx, userID, MaxList)
	if err != nil {
		return nil, unavailable(err)
	}
	return c, nil
}

func checkPair(userID, conversationID string) error {
	if err := checkID("user_id", userID); err != nil {
		return err
	}
	return checkID("conversation_id", conversationID)
}
