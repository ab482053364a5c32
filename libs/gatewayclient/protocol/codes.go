package protocol

import "fmt"

// ErrorCode names why a request failed. Codes are stable strings; the
// message beside them is for people and may change.
type ErrorCode string

// Error codes of replies and error pushes.
const (
	// ErrBadRequest: the frame is not JSON, lacks a field or names a
	// malformed room.
	ErrBadRequest ErrorCode = "bad_request"
	// ErrUnknownType: the frame's type is not one of the request types.
	ErrUnknownType ErrorCode = "unknown_type"
	// ErrAlreadyAuthenticated: auth sent on an authenticated connection.
	ErrAlreadyAuthenticated ErrorCode = "already_authenticated"
	// ErrForbidden: auth does not let this user into the room, a client
	// published to a room it may not publish to, or a refresh named
	// another user.
	ErrForbidden ErrorCode = "forbidden"
	// ErrNotMember: leave or publish for a room the connection is not in.
	ErrNotMember ErrorCode = "not_member"
	// ErrTooManyRooms: the connection holds as many rooms as it may.
	ErrTooManyRooms ErrorCode = "too_many_rooms"
	// ErrRateLimited: the frame came faster than the per-connection rate
	// and was dropped unprocessed.
	ErrRateLimited ErrorCode = "rate_limited"
	// ErrBadToken: a refresh carried a token auth does not accept; the
	// connection keeps its current token.
	ErrBadToken ErrorCode = "bad_token"
	// ErrUnavailable: a dependency (auth, Redis) did not answer in time;
	// retry later.
	ErrUnavailable ErrorCode = "unavailable"
)

// Error is the error of a reply or of an error push.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// CloseCode is the WebSocket close code the gateway sends. Codes 3000-3499
// tell the client to reconnect (with backoff); codes 3500-3999 tell it not
// to reconnect until something changes (a new token, a fixed client).
type CloseCode uint16

// The close-code catalog. Numbers are stable.
const (
	CloseRestarting      CloseCode = 3000
	CloseAuthUnavailable CloseCode = 3001
	CloseSlowConsumer    CloseCode = 3002
	CloseTokenExpired    CloseCode = 3003
	CloseNoPong          CloseCode = 3004
	CloseAuthTimeout     CloseCode = 3005
	CloseNodeFull        CloseCode = 3006
	CloseInternal        CloseCode = 3007

	CloseBadToken           CloseCode = 3500
	CloseSessionRevoked     CloseCode = 3501
	CloseBadRequest         CloseCode = 3502
	CloseTooManyConnections CloseCode = 3503
	CloseMessageTooBig      CloseCode = 3504
	CloseRateLimited        CloseCode = 3505
)

// CloseInfo describes one close code.
type CloseInfo struct {
	Code   CloseCode
	Reason string // sent as the close frame's reason
	When   string
}

// Closes is the catalog, in code order.
var Closes = []CloseInfo{
	{CloseRestarting, "restarting", "the replica is shutting down; reconnect, another replica answers"},
	{CloseAuthUnavailable, "auth unavailable", "the auth service did not answer while validating the token"},
	{CloseSlowConsumer, "slow consumer", "the client read too slowly and its outgoing queue overflowed"},
	{CloseTokenExpired, "token expired", "the token expired and no refresh came within the grace; get a fresh token and reconnect"},
	{CloseNoPong, "no pong", "a protocol ping was not answered within the timeout"},
	{CloseAuthTimeout, "auth timeout", "no token arrived within the authentication deadline"},
	{CloseNodeFull, "node full", "the replica holds as many connections as it may; another may not"},
	{CloseInternal, "internal error", "the broker did not confirm the subscription of the user room within the request timeout (Redis slow or unreachable), or the replica was closing"},
	{CloseBadToken, "bad token", "auth rejected the token: malformed, expired at connect, or revoked"},
	{CloseSessionRevoked, "session revoked", "the session was revoked (logout); log in again"},
	{CloseBadRequest, "bad request", "a binary frame, or a first frame that is not a well-formed auth request"},
	{CloseTooManyConnections, "too many connections", "the user holds as many connections as they may"},
	{CloseMessageTooBig, "message too big", "a frame exceeded the inbound size limit"},
	{CloseRateLimited, "rate limited", "the client kept sending faster than allowed after being told"},
}

// Reason returns the catalog's reason for c, or "" for a code outside it.
func (c CloseCode) Reason() string {
	for _, info := range Closes {
		if info.Code == c {
			return info.Reason
		}
	}
	return ""
}

// Reconnect reports whether a client should reconnect after a close with
// code c. Codes outside the catalog follow the RFC 6455 meaning: going away,
// abnormal closure, internal error, restart and try-again-later reconnect;
// normal closure (1000: the gateway never sends it, so it is a close the
// client asked for), protocol error, unsupported or invalid data, policy
// violation, too big, a missing extension and the 3500-3999 range do not.
func Reconnect(code int) bool {
	switch {
	case code >= 3000 && code < 3500:
		return true
	case code >= 3500 && code < 4000:
		return false
	}
	switch code {
	case 1000, 1002, 1003, 1007, 1008, 1009, 1010:
		return false
	}
	return true
}
