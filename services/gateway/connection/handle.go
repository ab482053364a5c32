package connection

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/hub"
)

// handle answers one request of an authenticated connection.
func (c *Conn) handle(ctx context.Context, req *protocol.Request) {
	if req.ID == 0 {
		c.pushError(protocol.ErrBadRequest, "every request needs a positive id")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	switch req.Type {
	case protocol.TypePing:
		c.reply(req.ID, protocol.PingResult{TS: pingTS(req.TS), ServerTime: time.Now().UnixMilli()})
	case protocol.TypeJoin:
		c.join(ctx, req)
	case protocol.TypeLeave:
		c.leave(req)
	case protocol.TypePublish:
		c.publish(ctx, req)
	case protocol.TypeRefresh:
		c.refresh(ctx, req)
	case protocol.TypeConversations:
		c.conversations(ctx, req)
	case protocol.TypeAuth:
		c.replyError(req.ID, protocol.ErrAlreadyAuthenticated, "the connection is already authenticated")
	default:
		c.replyError(req.ID, protocol.ErrUnknownType, "unknown frame type")
	}
}

func pingTS(ts json.RawMessage) json.RawMessage {
	if len(ts) == 0 {
		return json.RawMessage("null")
	}
	return ts
}

func (c *Conn) join(ctx context.Context, req *protocol.Request) {
	prefix, id, ok := protocol.ParseRoom(req.Room)
	if !ok {
		c.replyError(req.ID, protocol.ErrBadRequest, "malformed room name")
		return
	}
	if req.Since != nil && (req.Since.Epoch == "" || len(req.Since.Epoch) > maxEpochBytes) {
		c.replyError(req.ID, protocol.ErrBadRequest, "since needs an epoch of 1 to 64 bytes")
		return
	}
	if c.member(req.Room) {
		c.rejoin(ctx, req)
		return
	}
	if prefix != protocol.ConversationPrefix {
		c.replyError(req.ID, protocol.ErrForbidden, "only conversation rooms can be joined")
		return
	}
	if c.roomCount() >= c.cfg.MaxRooms {
		c.replyError(req.ID, protocol.ErrTooManyRooms, "the connection holds as many rooms as it may")
		return
	}
	// A revocation that arrives between auth's yes and the membership
	// would find nothing to remove: the join is recorded as in flight
	// first, and a revocation of it meanwhile makes it fail.
	c.startJoin(req.Room)
	defer c.endJoin()
	allowed, err := c.deps.Auth.Authorize(ctx, c.identity().User, id)
	switch {
	case err != nil:
		c.replyError(req.ID, protocol.ErrUnavailable, "auth did not answer; retry later")
		return
	case !allowed:
		c.replyError(req.ID, protocol.ErrForbidden, "you may not join this room")
		return
	case c.joinRevokedYet():
		c.replyError(req.ID, protocol.ErrForbidden, revokedMessage)
		return
	}
	if err := c.deps.Hub.Join(ctx, req.Room, c, req.Since != nil); err != nil {
		c.replyError(req.ID, protocol.ErrUnavailable, "the broker did not answer; retry later")
		return
	}
	switch c.finishJoin(req.Room) {
	case joinClosing:
		return
	case joinRefused:
		// Live messages may have reached the client since the hub join.
		c.push(protocol.Frame{Type: protocol.TypeLeft, Room: req.Room, Reason: protocol.ReasonAccessRevoked})
		c.replyError(req.ID, protocol.ErrForbidden, revokedMessage)
		return
	}
	recovered := c.recover(ctx, req)
	if !c.member(req.Room) {
		// Revoked during the recovery: AccessRevoked has left the room
		// and pushed left already.
		c.replyError(req.ID, protocol.ErrForbidden, revokedMessage)
		return
	}
	c.reply(req.ID, protocol.JoinResult{Room: req.Room, Recovered: recovered})
}

// revokedMessage answers a join whose access was revoked while it was in
// flight.
const revokedMessage = "your access to this room was revoked"

// replayBytes estimates the queued size of msgs.
func replayBytes(msgs []broker.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Data) + len(m.Room) + len(m.Epoch) + 64
	}
	return n
}

// maxEpochBytes bounds the epoch a client names.
const maxEpochBytes = 64

// rejoin answers a join of a room the connection is already in (its user
// room, or a repeated join): with a position, the room's history after it
// is sent again; the client drops what it already has.
func (c *Conn) rejoin(ctx context.Context, req *protocol.Request) {
	if req.Since == nil {
		c.reply(req.ID, protocol.JoinResult{Room: req.Room})
		return
	}
	if !c.deps.Hub.Hold(req.Room, c) {
		c.replyError(req.ID, protocol.ErrNotMember, "the connection is leaving this room")
		return
	}
	c.reply(req.ID, protocol.JoinResult{Room: req.Room, Recovered: c.recover(ctx, req)})
}

// recover sends the history of req.Room after req.Since, then the
// messages the hub held back meanwhile, and reports whether the history
// reached back to req.Since (nil when the join named no position). The
// connection is a member holding back live messages when it is called.
func (c *Conn) recover(ctx context.Context, req *protocol.Request) *bool {
	if req.Since == nil {
		return nil
	}
	msgs, err := c.deps.Broker.History(ctx, req.Room, req.Since.Epoch, req.Since.Offset)
	if err == nil && replayBytes(msgs) > c.cfg.QueueBytes/2 {
		msgs, err = nil, broker.ErrNotRecoverable // it would overflow the queue
	}
	recovered := err == nil
	epoch, last := req.Since.Epoch, req.Since.Offset
	switch {
	case errors.Is(err, broker.ErrNotRecoverable):
		c.deps.Metrics.Recoveries.WithLabelValues("not_recoverable").Inc()
		epoch, last = "", 0
	case err != nil:
		c.deps.Metrics.Recoveries.WithLabelValues("error").Inc()
		epoch, last = "", 0
	default:
		c.deps.Metrics.Recoveries.WithLabelValues("recovered").Inc()
	}
	if !c.member(req.Room) {
		msgs = nil // revoked (or closing) while history was read
	}
	for _, m := range msgs {
		c.Send(hub.EncodeMessage(m), m.Published)
		last = m.Offset
	}
	c.deps.Hub.Live(req.Room, c, epoch, last)
	return &recovered
}

func (c *Conn) leave(req *protocol.Request) {
	prefix, _, ok := protocol.ParseRoom(req.Room)
	switch {
	case !ok:
		c.replyError(req.ID, protocol.ErrBadRequest, "malformed room name")
		return
	case prefix == protocol.UserPrefix:
		c.replyError(req.ID, protocol.ErrForbidden, "the user room cannot be left")
		return
	}
	c.mu.Lock()
	was := c.rooms.remove(req.Room)
	c.mu.Unlock()
	if !was {
		c.replyError(req.ID, protocol.ErrNotMember, "the connection is not in this room")
		return
	}
	c.deps.Hub.Leave(req.Room, c)
	c.reply(req.ID, protocol.JoinResult{Room: req.Room})
}

func (c *Conn) publish(ctx context.Context, req *protocol.Request) {
	prefix, _, ok := protocol.ParseRoom(req.Room)
	switch {
	case !ok || len(req.Data) == 0:
		c.replyError(req.ID, protocol.ErrBadRequest, "publish needs a room and data")
		return
	case prefix != protocol.ConversationPrefix:
		c.replyError(req.ID, protocol.ErrForbidden, "clients publish to conversation rooms only")
		return
	case !c.member(req.Room):
		c.replyError(req.ID, protocol.ErrNotMember, "join the room before publishing to it")
		return
	case len(req.IdempotencyKey) > protocol.MaxKeyBytes:
		c.replyError(req.ID, protocol.ErrBadRequest, "idempotency_key is longer than 128 bytes")
		return
	}
	epoch, off, err := c.deps.Broker.Publish(ctx, req.Room, req.Data, req.IdempotencyKey)
	if err != nil {
		c.deps.Metrics.Publishes.WithLabelValues("client", "error").Inc()
		c.replyError(req.ID, protocol.ErrUnavailable, "the broker did not acknowledge; retry")
		return
	}
	c.deps.Metrics.Publishes.WithLabelValues("client", "ok").Inc()
	c.reply(req.ID, protocol.PublishResult{Epoch: epoch, Offset: off})
}

func (c *Conn) refresh(ctx context.Context, req *protocol.Request) {
	id, err := c.deps.Auth.Validate(ctx, req.Token)
	switch {
	case errors.Is(err, authn.ErrBadToken):
		c.replyError(req.ID, protocol.ErrBadToken, "auth refused the token")
		return
	case err != nil:
		c.replyError(req.ID, protocol.ErrUnavailable, "auth did not answer; retry later")
		return
	}
	c.mu.Lock()
	same := id.User == c.ident.User
	if same {
		c.ident = id
	}
	c.mu.Unlock()
	if !same {
		c.replyError(req.ID, protocol.ErrForbidden, "the token belongs to another user")
		return
	}
	c.armExpiry()
	c.reply(req.ID, protocol.RefreshResult{ExpiresAt: id.Expires.UnixMilli()})
}

func (c *Conn) conversations(ctx context.Context, req *protocol.Request) {
	ids, err := c.deps.Auth.Conversations(ctx, c.identity().User)
	if err != nil {
		c.replyError(req.ID, protocol.ErrUnavailable, "auth did not answer; retry later")
		return
	}
	if len(ids) > protocol.MaxConversations {
		ids = ids[:protocol.MaxConversations]
	}
	c.reply(req.ID, protocol.ConversationsResult{Conversations: ids})
}

func (c *Conn) member(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms.has(room)
}

func (c *Conn) roomCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rooms.names)
}

func (c *Conn) reply(id uint64, result any) {
	c.push(protocol.Frame{Type: protocol.TypeReply, ID: id, Result: mustJSON(result)})
}

func (c *Conn) replyError(id uint64, code protocol.ErrorCode, msg string) {
	if id == 0 {
		c.pushError(code, msg)
		return
	}
	c.push(protocol.Frame{Type: protocol.TypeReply, ID: id, Error: &protocol.Error{Code: code, Message: msg}})
}

func (c *Conn) pushError(code protocol.ErrorCode, msg string) {
	c.push(protocol.Frame{Type: protocol.TypeError, Error: &protocol.Error{Code: code, Message: msg}})
}

func (c *Conn) push(f protocol.Frame) { c.Send(mustJSON(f), time.Time{}) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("connection: encode a frame: " + err.Error())
	}
	return b
}
