package connection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/hub"
)

// read authenticates the client, then reads and handles requests until
// the connection ends. It returns the close code to send, or 0 when the
// peer went away.
func (c *Conn) read(ctx context.Context, token string) protocol.CloseCode {
	var first *protocol.Request
	if token == "" {
		req, code := c.next(ctx)
		if code != 0 || (req == nil && c.isClosing()) {
			return code
		}
		if req == nil || req.Type != protocol.TypeAuth {
			return protocol.CloseBadRequest
		}
		token, first = req.Token, req
	}
	var code protocol.CloseCode
	onFreshStack(func() { code = c.authenticate(ctx, token, first) })
	if code != 0 {
		return code
	}

	violations := 0
	for {
		req, code := c.next(ctx)
		if code != 0 || (req == nil && c.isClosing()) {
			return code
		}
		if !c.limiter.Allow() {
			if violations++; violations > c.cfg.Burst {
				return protocol.CloseRateLimited
			}
			c.replyError(reqID(req), protocol.ErrRateLimited, "too many frames; slow down")
			continue
		}
		violations = 0
		if req != nil {
			onFreshStack(func() { c.handle(ctx, req) })
		}
	}
}

func reqID(req *protocol.Request) uint64 {
	if req == nil {
		return 0
	}
	return req.ID
}

// next reads one frame. It returns a nil request for a text frame that is
// not a valid request (after answering it with an error), and a close code
// for a frame that ends the connection. Code 0 with a nil request and a
// closing connection means the peer went away.
//
// Each frame is read into a buffer of its own, dropped once decoded: a
// buffer kept between frames would sit in every idle connection.
func (c *Conn) next(ctx context.Context) (*protocol.Request, protocol.CloseCode) {
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		c.Close(0)
		return nil, 0
	}
	if typ != websocket.MessageText {
		return nil, protocol.CloseBadRequest
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, c.cfg.MaxMessageBytes+1))
	if err != nil {
		c.Close(0)
		return nil, 0
	}
	if n > c.cfg.MaxMessageBytes {
		return nil, protocol.CloseMessageTooBig
	}
	c.deps.Metrics.BytesIn.Add(float64(n))

	var req protocol.Request
	onFreshStack(func() { err = json.Unmarshal(buf.Bytes(), &req) })
	if err != nil {
		c.deps.Metrics.MessagesIn.WithLabelValues("malformed").Inc()
		c.pushError(protocol.ErrBadRequest, "the frame is not a JSON request")
		return nil, 0
	}
	c.deps.Metrics.MessagesIn.WithLabelValues(typeLabel(req.Type)).Inc()
	return &req, 0
}

func typeLabel(t string) string {
	switch t {
	case protocol.TypeAuth, protocol.TypeJoin, protocol.TypeLeave, protocol.TypePublish,
		protocol.TypePing, protocol.TypeRefresh, protocol.TypeConversations:
		return t
	}
	return "unknown"
}

func (c *Conn) isClosing() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.closing
}

// authenticate validates token, registers the connection and joins its
// user room. first is the auth request when the token came in a frame.
func (c *Conn) authenticate(ctx context.Context, token string, first *protocol.Request) protocol.CloseCode {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	id, err := c.deps.Auth.Validate(ctx, token)
	switch {
	case errors.Is(err, authn.ErrBadToken):
		return protocol.CloseBadToken
	case err != nil:
		return protocol.CloseAuthUnavailable
	}
	if code := c.register(id); code != 0 {
		return code
	}
	room := protocol.UserPrefix + id.User
	if err := c.deps.Hub.Join(ctx, room, c, false); err != nil {
		c.logger().Warn("join user room", "error", err)
		return protocol.CloseInternal
	}
	if !c.addRoom(room) {
		return 0 // closing already
	}
	close(c.authed)

	res := protocol.AuthResult{
		User: id.User, ExpiresAt: id.Expires.UnixMilli(), Rooms: []string{room}, Connection: c.id,
	}
	if first != nil {
		c.reply(first.ID, res)
	}
	c.push(protocol.Frame{Type: protocol.TypeConnected, Result: mustJSON(res)})
	c.armExpiry()
	return 0
}

func (c *Conn) register(id authn.Identity) protocol.CloseCode {
	c.mu.Lock()
	c.ident = id
	c.mu.Unlock()
	switch err := c.deps.Hub.Register(id.User, c); {
	case errors.Is(err, hub.ErrTooManyForUser):
		c.dropIdentity()
		return protocol.CloseTooManyConnections
	case errors.Is(err, hub.ErrNodeFull):
		c.dropIdentity()
		return protocol.CloseNodeFull
	}
	return 0
}

// dropIdentity forgets an identity that was never registered, so cleanup
// does not unregister it.
func (c *Conn) dropIdentity() {
	c.mu.Lock()
	c.ident = authn.Identity{}
	c.mu.Unlock()
}

// onFreshStack runs f on a goroutine of its own and waits for it. A
// goroutine's stack grows to its deepest call and shrinks only when a
// collection finds it mostly unused, so the reader hands work that needs
// a deep stack (calls to auth and the broker, JSON decoding) to a
// short-lived goroutine: its own stack stays as small as waiting for the
// next frame needs, and that stack is what an idle connection costs.
func onFreshStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
