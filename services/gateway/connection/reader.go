package connection

import (
	"context"
	"encoding/json"
	"errors"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/hub"
	"switchboard/services/gateway/wsconn"
)

// burst reads and handles what the client sent, then parks the
// connection until it sends more, or ends the connection. Each burst
// runs on a goroutine of its own, so an idle connection holds none, and
// the stack that calls auth, the broker and the JSON decoder is dropped
// with it.
func (c *Conn) burst() {
	code, ended := c.readBurst()
	if ended {
		c.end(code)
		return
	}
	c.ws.Park(c.burst)
}

// readBurst handles requests until nothing is buffered. It reports
// whether the connection ends, and with which close code (0: the peer
// went away).
func (c *Conn) readBurst() (protocol.CloseCode, bool) {
	for {
		if !c.signedIn {
			if code, ended := c.signIn(); ended {
				return code, true
			}
		} else if code, ended := c.nextRequest(); ended {
			return code, true
		}
		if c.ws.Buffered() == 0 {
			return 0, false
		}
	}
}

// signIn authenticates with the upgrade request's token, or else with the
// first message, which must be an auth request.
func (c *Conn) signIn() (protocol.CloseCode, bool) {
	token, first := c.token, (*protocol.Request)(nil)
	if token == "" {
		req, got, code := c.next()
		switch got {
		case gotNothing:
			return 0, false
		case gotEnd:
			return code, true
		}
		if got == gotMalformed || req.Type != protocol.TypeAuth {
			return protocol.CloseBadRequest, true
		}
		token, first = req.Token, req
	}
	c.token = ""
	if code := c.authenticate(context.Background(), token, first); code != 0 {
		return code, true
	}
	c.signedIn = true
	return 0, false
}

// nextRequest reads one message and handles it, within the rate limit.
func (c *Conn) nextRequest() (protocol.CloseCode, bool) {
	req, got, code := c.next()
	if got == gotEnd {
		return code, true
	}
	// Control frames count too (gotNothing: a run of them, or those
	// before an empty buffer), though there is nothing to answer.
	if !c.limiter.allow(c.cfg.Rate, c.cfg.Burst) {
		if c.violations++; c.violations > c.cfg.Burst {
			return protocol.CloseRateLimited, true
		}
		if got != gotNothing {
			c.replyError(reqID(req), protocol.ErrRateLimited, "too many frames; slow down")
		}
		return 0, false
	}
	c.violations = 0
	if got == gotRequest {
		c.handle(context.Background(), req)
	}
	return 0, false
}

func reqID(req *protocol.Request) uint64 {
	if req == nil {
		return 0
	}
	return req.ID
}

// What next found.
type readResult int

const (
	gotRequest   readResult = iota // a request
	gotMalformed                   // a message that is no request, answered with an error
	gotNothing                     // control frames only; nothing to handle
	gotEnd                         // the connection ends, with the close code returned
)

// next reads one message. Each message is read into a buffer of its own,
// dropped once decoded: a buffer kept between messages would sit in every
// idle connection.
func (c *Conn) next() (*protocol.Request, readResult, protocol.CloseCode) {
	text, p, err := c.ws.ReadMessage(c.cfg.MaxMessageBytes)
	switch {
	case errors.Is(err, wsconn.ErrNoMessage):
		return nil, gotNothing, 0
	case errors.Is(err, wsconn.ErrTooBig):
		return nil, gotEnd, protocol.CloseMessageTooBig
	case errors.As(err, new(wsconn.ProtocolError)):
		return nil, gotEnd, protocol.CloseBadRequest
	case err != nil: // the client closed or went away, or the server cut it
		c.Close(0)
		return nil, gotEnd, 0
	case !text:
		return nil, gotEnd, protocol.CloseBadRequest
	}
	c.deps.Metrics.BytesIn.Add(float64(len(p)))

	var req protocol.Request
	if err := json.Unmarshal(p, &req); err != nil {
		c.deps.Metrics.MessagesIn.WithLabelValues("malformed").Inc()
		c.pushError(protocol.ErrBadRequest, "the frame is not a JSON request")
		return nil, gotMalformed, 0
	}
	c.deps.Metrics.MessagesIn.WithLabelValues(typeLabel(req.Type)).Inc()
	return &req, gotRequest, 0
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
	c.authed.Store(true)

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
