package protocol

import (
	"encoding/json"
	"strings"
)

// Request types, sent by clients.
const (
	TypeAuth    = "auth"
	TypeJoin    = "join"
	TypeLeave   = "leave"
	TypePublish = "publish"
	TypePing    = "ping"
	TypeRefresh = "refresh"
	// TypeConversations lists the conversations the user may join.
	TypeConversations = "conversations"
)

// Server frame types.
const (
	TypeReply     = "reply"
	TypeConnected = "connected"
	TypeMessage   = "message"
	TypeLeft      = "left"
	TypeError     = "error"
	// TypeResync tells a member that messages of Room may have been lost
	// on its live stream and could not be read from history: join the
	// room again with the last position seen.
	TypeResync = "resync"
)

// Reasons carried by a left push.
const (
	ReasonAccessRevoked = "access_revoked"
)

// Request is one frame from a client. Which fields matter depends on Type:
// auth and refresh carry Token; join, leave and publish carry Room; publish
// carries Data; ping carries TS, which the reply echoes untouched.
type Request struct {
	ID    uint64          `json:"id"`
	Type  string          `json:"type"`
	Token string          `json:"token,omitempty"`
	Room  string          `json:"room,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	TS    json.RawMessage `json:"ts,omitempty"`
	// Since, on join, is the last position the client saw in Room: the
	// gateway sends every later message before live ones, or answers that
	// the position is not recoverable.
	Since *Position `json:"since,omitempty"`
	// IdempotencyKey, on publish, makes a retry within the gateway's
	// window answer with the original position instead of publishing
	// again. At most MaxKeyBytes.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Position is a message's place in a room's history: its offset within the
// room's epoch. A new epoch means earlier offsets are meaningless.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Frame is one frame from the server. Type says which fields are set:
//   - reply: ID, and Result or Error;
//   - connected: Result (an AuthResult);
//   - message: Room, Data, Epoch, Offset;
//   - left: Room, Reason;
//   - resync: Room;
//   - error: Error, for a frame that could not be answered by id.
type Frame struct {
	Type   string          `json:"type"`
	ID     uint64          `json:"id,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
	Room   string          `json:"room,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Epoch  string          `json:"epoch,omitempty"`
	Offset uint64          `json:"offset,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// AuthResult answers auth and is the body of the connected push.
type AuthResult struct {
	User string `json:"user"`
	// ExpiresAt is the token's expiry in Unix milliseconds: the client
	// should refresh before it.
	ExpiresAt  int64    `json:"expires_at"`
	Rooms      []string `json:"rooms"`
	Connection string   `json:"connection"`
}

// JoinResult answers join and leave. Recovered is set when the join named
// a position: true when every message after it was sent, in order and
// before any live one, ahead of this reply; false when the position is not
// recoverable (the room's epoch changed, or its history no longer reaches
// back to it), in which case the room is joined all the same.
type JoinResult struct {
	Room      string `json:"room"`
	Recovered *bool  `json:"recovered,omitempty"`
}

// MaxKeyBytes bounds an idempotency key.
const MaxKeyBytes = 128

// PublishResult answers publish with the message's position.
type PublishResult struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// PingResult echoes the client's timestamp and adds the server's clock in
// Unix milliseconds.
type PingResult struct {
	TS         json.RawMessage `json:"ts"`
	ServerTime int64           `json:"server_time"`
}

// ConversationsResult answers conversations with the ids (not room names)
// of the conversations the user may join, at most MaxConversations.
type ConversationsResult struct {
	Conversations []string `json:"conversations"`
}

// MaxConversations bounds a conversations answer.
const MaxConversations = 1000

// RefreshResult answers refresh with the new expiry in Unix milliseconds.
type RefreshResult struct {
	ExpiresAt int64 `json:"expires_at"`
}

// Room name prefixes.
const (
	UserPrefix         = "user:"
	ConversationPrefix = "conversation:"
)

// MaxIDLen bounds the id part of a room name.
const MaxIDLen = 128

// ParseRoom splits a room name into its kind prefix and id, and reports
// whether it is well formed: "user:" or "conversation:" then 1 to MaxIDLen
// characters among letters, digits and - _ . @.
func ParseRoom(room string) (prefix, id string, ok bool) {
	for _, p := range []string{UserPrefix, ConversationPrefix} {
		if rest, found := strings.CutPrefix(room, p); found {
			return p, rest, validID(rest)
		}
	}
	return "", "", false
}

func validID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '@':
		default:
			return false
		}
	}
	return true
}
