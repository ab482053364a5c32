package store

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"
)

// subscriberBuffer is how many events a slow subscriber may lag before its
// subscription ends.
const subscriberBuffer = 1024

type memSession struct {
	Session
	cur, prev Hash
	hasPrev   bool
	history   []Hash // newest first, at most HistoryLen
	rotated   time.Time
	sealed    []byte      // the current token sealed under prev; nil once the grace is over
	unseal    *time.Timer // clears sealed the grace after the rotation
}

// Memory is the in-process Store of the embedded default. An expired
// session is dropped when it is next looked at, or found by the pruning of
// its user's next new session; until then it holds memory. The sealed
// current token of a rotation is dropped by a timer the grace after the
// rotation (by the wall clock, whatever Rotation.Now says), and is not kept
// at all when the grace is 0.
type Memory struct {
	// Guarded by mu: everything.
	mu       sync.Mutex
	closed   bool
	users    map[string]User   // by id
	emails   map[string]string // email -> id
	sessions map[string]*memSession
	byUser   map[string]map[string]struct{} // user -> session ids
	members  map[string]map[string]struct{} // conversation -> users
	convs    map[string]map[string]struct{} // user -> conversations
	subs     map[*memSub]struct{}
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{
		users: map[string]User{}, emails: map[string]string{},
		sessions: map[string]*memSession{}, byUser: map[string]map[string]struct{}{},
		members: map[string]map[string]struct{}{}, convs: map[string]map[string]struct{}{},
		subs: map[*memSub]struct{}{},
	}
}

var errClosed = errors.New("store closed")

func (m *Memory) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed
	}
	return nil
}

// CreateUser implements Store.
func (m *Memory) CreateUser(_ context.Context, u User) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.users[u.ID]; ok {
		return ErrExists
	}
	if _, ok := m.emails[u.Email]; ok {
		return ErrExists
	}
	m.users[u.ID], m.emails[u.Email] = u, u.ID
	return nil
}

// UserByEmail implements Store.
func (m *Memory) UserByEmail(_ context.Context, email string) (User, error) {
	if err := m.lock(); err != nil {
		return User{}, err
	}
	defer m.mu.Unlock()
	id, ok := m.emails[email]
	if !ok {
		return User{}, ErrNotFound
	}
	return m.users[id], nil
}

// CreateSession implements Store.
func (m *Memory) CreateSession(_ context.Context, s Session, refresh Hash) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.ID]; ok {
		return ErrExists
	}
	m.pruneLocked(s.UserID, s.Created)
	m.sessions[s.ID] = &memSession{Session: s, cur: refresh}
	addTo(m.byUser, s.UserID, s.ID)
	return nil
}

// pruneLocked looks at up to 8 of a user's sessions and drops the expired
// ones, so that the work per new session stays bounded. Caller must hold
// mu.
func (m *Memory) pruneLocked(userID string, now time.Time) {
	n := 0
	for id := range m.byUser[userID] {
		if s, ok := m.sessions[id]; !ok || !now.Before(s.Expires) {
			m.dropLocked(id, userID)
		}
		if n++; n == 8 {
			return
		}
	}
}

// liveLocked returns a session that exists and has not expired at now,
// dropping it if it expired. Caller must hold mu.
func (m *Memory) liveLocked(id string, now time.Time) (*memSession, bool) {
	s, ok := m.sessions[id]
	if !ok {
		return nil, false
	}
	if !now.Before(s.Expires) {
		m.dropLocked(id, s.UserID)
		return nil, false
	}
	return s, true
}

// dropLocked forgets a session without announcing it. Caller must hold mu.
func (m *Memory) dropLocked(id, userID string) {
	if s, ok := m.sessions[id]; ok {
		s.setSealedLocked(m, nil, 0)
	}
	delete(m.sessions, id)
	removeFrom(m.byUser, userID, id)
}

// setSealedLocked keeps sealed as the session's current token for grace,
// replacing the one kept before; nil or a grace of 0 keeps nothing.
// Caller must hold m.mu.
func (s *memSession) setSealedLocked(m *Memory, sealed []byte, grace time.Duration) {
	if s.unseal != nil {
		s.unseal.Stop()
		s.unseal = nil
	}
	s.sealed = nil
	if sealed == nil || grace <= 0 {
		return
	}
	s.sealed = slices.Clone(sealed)
	var timer *time.Timer
	timer = time.AfterFunc(grace, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if s.unseal == timer { // not replaced since
			s.sealed, s.unseal = nil, nil
		}
	})
	s.unseal = timer
}

// Session implements Store.
func (m *Memory) Session(_ context.Context, id string, now time.Time) (Session, error) {
	if err := m.lock(); err != nil {
		return Session{}, err
	}
	defer m.mu.Unlock()
	s, ok := m.liveLocked(id, now)
	if !ok {
		return Session{}, ErrNotFound
	}
	return s.Session, nil
}

// Rotate implements Store.
func (m *Memory) Rotate(_ context.Context, r Rotation) (RotateResult, error) {
	if err := m.lock(); err != nil {
		return RotateResult{}, err
	}
	defer m.mu.Unlock()
	s, ok := m.liveLocked(r.SessionID, r.Now)
	if !ok {
		return RotateResult{Outcome: Gone}, nil
	}
	switch {
	case s.cur == r.Presented:
		if s.hasPrev {
			s.history = append([]Hash{s.prev}, s.history...)
			s.history = s.history[:min(len(s.history), HistoryLen)]
		}
		s.prev, s.hasPrev, s.cur, s.rotated = s.cur, true, r.Next, r.Now
		s.setSealedLocked(m, r.NextSealed, r.Grace)
		return RotateResult{Outcome: Rotated, Session: s.Session}, nil
	case s.hasPrev && s.prev == r.Presented && r.Now.Sub(s.rotated) <= r.Grace && s.sealed != nil:
		return RotateResult{Outcome: Replayed, Session: s.Session, Sealed: slices.Clone(s.sealed)}, nil
	case s.hasPrev && s.prev == r.Presented, slices.Contains(s.history, r.Presented):
		m.revokeLocked(s)
		return RotateResult{Outcome: Reused, Session: s.Session}, nil
	}
	return RotateResult{Outcome: Unknown}, nil
}

// revokeLocked ends a session and announces it. Caller must hold mu.
func (m *Memory) revokeLocked(s *memSession) {
	m.dropLocked(s.ID, s.UserID)
	m.publishLocked(Event{Kind: SessionRevoked, SessionID: s.ID, UserID: s.UserID})
}

// RevokeSession implements Store.
func (m *Memory) RevokeSession(_ context.Context, id string, presented *Hash) (Session, error) {
	if err := m.lock(); err != nil {
		return Session{}, err
	}
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return Session{}, ErrNotFound
	}
	if presented != nil && s.cur != *presented && !(s.hasPrev && s.prev == *presented) {
		return Session{}, ErrNotFound
	}
	m.revokeLocked(s)
	return s.Session, nil
}

// RevokeUserSessions implements Store.
func (m *Memory) RevokeUserSessions(_ context.Context, userID string) ([]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var ids []string
	for id := range m.byUser[userID] {
		if s, ok := m.sessions[id]; ok {
			m.revokeLocked(s)
			ids = append(ids, id)
		}
	}
	delete(m.byUser, userID)
	return ids, nil
}

// Grant implements Store.
func (m *Memory) Grant(_ context.Context, userID, conversationID string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	addTo(m.members, conversationID, userID)
	addTo(m.convs, userID, conversationID)
	return nil
}

// RevokeAccess implements Store.
func (m *Memory) RevokeAccess(_ context.Context, userID, conversationID string) (bool, error) {
	if err := m.lock(); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	if _, ok := m.members[conversationID][userID]; !ok {
		return false, nil
	}
	removeFrom(m.members, conversationID, userID)
	removeFrom(m.convs, userID, conversationID)
	m.publishLocked(Event{Kind: AccessRevoked, UserID: userID, ConversationID: conversationID})
	return true, nil
}

// Allowed implements Store.
func (m *Memory) Allowed(_ context.Context, userID, conversationID string) (bool, error) {
	if err := m.lock(); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	_, ok := m.members[conversationID][userID]
	return ok, nil
}

// Members implements Store.
func (m *Memory) Members(_ context.Context, conversationID string, limit int) ([]string, error) {
	return m.list(m.members, conversationID, limit)
}

// Conversations implements Store.
func (m *Memory) Conversations(_ context.Context, userID string, limit int) ([]string, error) {
	return m.list(m.convs, userID, limit)
}

func (m *Memory) list(sets map[string]map[string]struct{}, key string, limit int) ([]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(sets[key]))
	for v := range sets[key] {
		out = append(out, v)
	}
	m.mu.Unlock()
	sort.Strings(out)
	return out[:min(len(out), limit)], nil
}

// Close implements Store; subscriptions end.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for s := range m.subs {
		m.endLocked(s)
	}
	return nil
}

func addTo(sets map[string]map[string]struct{}, key, v string) {
	if sets[key] == nil {
		sets[key] = map[string]struct{}{}
	}
	sets[key][v] = struct{}{}
}

func removeFrom(sets map[string]map[string]struct{}, key, v string) {
	delete(sets[key], v)
	if len(sets[key]) == 0 {
		delete(sets, key)
	}
}

// memSub is one in-process subscription.
type memSub struct {
	m  *Memory
	ch chan Event
}

func (s *memSub) C() <-chan Event { return s.ch }

func (s *memSub) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.endLocked(s)
}

// Subscribe implements Store: events fan out in process.
func (m *Memory) Subscribe(context.Context) (Subscription, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	s := &memSub{m: m, ch: make(chan Event, subscriberBuffer)}
	m.subs[s] = struct{}{}
	return s, nil
}

// publishLocked hands e to every subscriber without blocking; a subscriber
// whose buffer is full is ended. Caller must hold mu.
func (m *Memory) publishLocked(e Event) {
	for s := range m.subs {
		select {
		case s.ch <- e:
		default:
			m.endLocked(s)
		}
	}
}

// endLocked ends a subscription once. Caller must hold mu.
func (m *Memory) endLocked(s *memSub) {
	if _, ok := m.subs[s]; ok {
		delete(m.subs, s)
		close(s.ch)
	}
}
