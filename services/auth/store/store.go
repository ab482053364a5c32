package store

import (
	"context"
	"errors"
	"time"
)

// Errors the stores return; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Hash is the stored form of a refresh token (token.HashRefresh).
type Hash [32]byte

// HistoryLen is how many refresh tokens older than the previous one a
// session remembers for reuse detection; an older one is Unknown, not
// Reused (see the package doc).
const HistoryLen = 16

// User is an account.
type User struct {
	ID           string
	Email        string // stored lower case; unique
	PasswordHash string // argon2id, PHC string form
}

// Session is a logged-in session.
type Session struct {
	ID      string
	UserID  string
	Created time.Time
	Expires time.Time // absolute; never extended
}

// Outcome is what a Rotate did.
type Outcome uint8

// Outcomes of Rotate.
const (
	// Rotated: the presented token was current; Next is current now.
	Rotated Outcome = iota + 1
	// Replayed: the presented token was the previous one, within the
	// grace; Sealed holds the current token sealed under the presented one.
	Replayed
	// Reused: the presented token was an old one; the session is revoked.
	Reused
	// Unknown: the session never had the presented token; nothing changed.
	Unknown
	// Gone: no such session, or it expired.
	Gone
)

var outcomeNames = [...]string{"", "rotated", "replayed", "reused", "unknown", "gone"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "invalid"
}

// Rotation asks to rotate a session's refresh token.
type Rotation struct {
	SessionID string
	Presented Hash
	Next      Hash
	// NextSealed is the next token sealed under the presented one
	// (token.Seal); it is what a Replayed outcome hands back later. The
	// store keeps it for Grace only.
	NextSealed []byte
	Now        time.Time
	Grace      time.Duration
}

// RotateResult is what Rotate reports.
type RotateResult struct {
	Outcome Outcome
	Session Session // set unless Gone or Unknown
	Sealed  []byte  // set when Replayed
}

// EventKind says what an Event revokes.
type EventKind uint8

// Kinds of Event.
const (
	SessionRevoked EventKind = iota + 1
	AccessRevoked
	Reset
)

func (k EventKind) String() string {
	switch k {
	case SessionRevoked:
		return "session"
	case AccessRevoked:
		return "access"
	case Reset:
		return "reset"
	}
	return "invalid"
}

// Event is one revocation.
type Event struct {
	Kind           EventKind
	SessionID      string // SessionRevoked
	UserID         string // both kinds
	ConversationID string // AccessRevoked
}

// Subscription delivers events until it ends; see the package doc.
type Subscription interface {
	C() <-chan Event
	Close()
}

// Store is what the auth service keeps. Every method is atomic.
type Store interface {
	// CreateUser adds u; ErrExists if its id or email is taken.
	CreateUser(ctx context.Context, u User) error
	// UserByEmail finds a user by (lower-case) email, or ErrNotFound.
	UserByEmail(ctx context.Context, email string) (User, error)

	// CreateSession stores s with the hash of its first refresh token.
	CreateSession(ctx context.Context, s Session, refresh Hash) error
	// Session returns a live session, or ErrNotFound when it is unknown,
	// revoked or expired at now.
	Session(ctx context.Context, id string, now time.Time) (Session, error)
	// Rotate rotates a session's refresh token; see Outcome.
	Rotate(ctx context.Context, r Rotation) (RotateResult, error)
	// RevokeSession ends a session and publishes SessionRevoked. With
	// presented non-nil, only if it is the current or previous refresh
	// token. ErrNotFound if nothing was revoked.
	RevokeSession(ctx context.Context, id string, presented *Hash) (Session, error)
	// RevokeUserSessions ends every session of a user, publishing one
	// SessionRevoked each, and returns their ids.
	RevokeUserSessions(ctx context.Context, userID string) ([]string, error)

	// Grant lets a user see a conversation.
	Grant(ctx context.Context, userID, conversationID string) error
	// RevokeAccess undoes Grant and publishes AccessRevoked; false if the
	// user had no access.
	RevokeAccess(ctx context.Context, userID, conversationID string) (bool, error)
	// Allowed says whether the user may see the conversation.
	Allowed(ctx context.Context, userID, conversationID string) (bool, error)
	// Members lists up to limit users of a conversation, sorted.
	Members(ctx context.Context, conversationID string, limit int) ([]string, error)
	// Conversations lists up to limit conversations of a user, sorted.
	Conversations(ctx context.Context, userID string, limit int) ([]string, error)

	// Subscribe starts receiving events; it returns once the subscription
	// is in place, so no event published afterwards is missed.
	Subscribe(ctx context.Context) (Subscription, error)
	// Close releases the store; subscriptions end.
	Close() error
}
