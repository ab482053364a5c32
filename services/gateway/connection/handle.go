package connection

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/authn"
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
	if c.member(req.Room) {
		c.reply(req.ID, protocol.JoinResult{Room: req.Room})
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
	allowed, err := c.deps.Auth.Authorize(ctx, c.identity().User, id)
	switch {
	case err != nil:
		c.replyError(req.ID, protocol.ErrUnavailable, "auth did not answer; retry later")
		return
	case !allowed:
		c.replyError(req.ID, protocol.ErrForbidden, "you may not join this room")
		return
	}
	if err := c.deps.Hub.Join(ctx, req.Room, c); err != nil {
		c.replyError(req.ID, protocol.ErrUnavailable, "the broker did not answer; retry later")
		return
	}
	if c.addRoom(req.Room) {
		c.reply(req.ID, protocol.JoinResult{Room: req.Room})
	}
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
	_, was := c.rooms[req.Room]
	delete(c.rooms, req.Room)
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
	}
	epoch, off, err := c.deps.Broker.Publish(ctx, req.Room, req.Data)
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
	_, ok := c.rooms[room]
	return ok
}

func (c *Conn) roomCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rooms)
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
