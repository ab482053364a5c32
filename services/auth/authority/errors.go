package authority

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an Error for the API layer, which maps it to a status.
type Kind uint8

// Kinds of Error.
const (
	// Unauthenticated: bad, expired or revoked token, or wrong credentials.
	Unauthenticated Kind = iota + 1
	// InvalidArgument: malformed input.
	InvalidArgument
	// RateLimited: too many login attempts; see Error.RetryAfter.
	RateLimited
	// AlreadyExists: the user's email or id is taken.
	AlreadyExists
	// Unavailable: the store did not answer; the call may be retried.
	Unavailable
)

// Error is what Authority methods return. Msg is safe to show a client;
// Err, if set, is the internal cause, for logs only.
type Error struct {
	Kind       Kind
	Msg        string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err, or 0 when it is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func unauthenticated(msg string) error { return &Error{Kind: Unauthenticated, Msg: msg} }

func invalid(format string, args ...any) error {
	return &Error{Kind: InvalidArgument, Msg: fmt.Sprintf(format, args...)}
}

func unavailable(err error) error {
	return &Error{Kind: Unavailable, Msg: "auth store unavailable", Err: err}
}

// Messages shown to clients; deliberately unspecific.
const (
	msgBadToken       = "invalid or expired token"
	msgBadCredentials = "invalid email or password"
	msgBadRefresh     = "invalid or expired refresh token"
)
