package gatewayclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient/protocol"
)

// session is one WebSocket, from dial to close.
type session struct {
	// Read-only after construction.
	c         *Client
	ws        *websocket.Conn
	done      chan struct{} // closed when the reader ends
	connected chan struct{} // closed on the connected push
	ctx       context.Context
	wg        sync.WaitGroup // resync recoveries in flight

	// Guarded by mu.
	mu      sync.Mutex
	pending map[uint64]chan protocol.Frame
	readErr error
}

// session dials with tok and serves the connection until it ends. It
// returns the server's close code (0: none), whether the connection got as
// far as connected, and why it ended.
func (c *Client) session(ctx context.Context, url, tok string) (int, bool, error) {
	h := http.Header{}
	if c.opts.Header != nil {
		h = c.opts.Header.Clone()
	}
	h.Set("Authorization", "Bearer "+tok)
	dctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: h})
	cancel()
	if err != nil {
		return 0, false, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	s := &session{
		c: c, ws: ws, done: make(chan struct{}), connected: make(chan struct{}),
		pending: make(map[uint64]chan protocol.Frame), ctx: sctx,
	}
	go s.read()

	connected := s.serve(ctx)
	stop()
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	c.mu.Unlock()
	c.setQuality(nil, QualityUnknown, 0) // nothing left to grade
	ws.Close(websocket.StatusNormalClosure, "")
	<-s.done
	s.wg.Wait()
	s.mu.Lock()
	err = s.readErr
	s.mu.Unlock()
	code := int(websocket.CloseStatus(err))
	if code < 0 {
		code = 0
	}
	return code, connected, err
}

// serve waits for the connected push, rejoins the rooms, then pings and
// refreshes until the connection or ctx ends.
func (s *session) serve(ctx context.Context) bool {
	select {
	case <-s.connected:
	case <-s.done:
		return false
	case <-ctx.Done():
		return false
	}
	s.rejoin(ctx)
	ping := time.NewTicker(s.c.opts.PingInterval)
	defer ping.Stop()
	refresh := time.NewTimer(s.c.untilRefresh())
	defer refresh.Stop()
	s.ping(ctx)
	for {
		select {
		case <-s.done:
			return true
		case <-ctx.Done():
			return true
		case <-ping.C:
			s.ping(ctx)
		case <-refresh.C:
			refresh.Reset(s.refresh(ctx))
		}
	}
}

func (c *Client) untilRefresh() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(time.Until(c.expires.Add(-c.opts.RefreshMargin)), 0)
}

// rejoin joins every room the client wants, naming the last position
// seen in each, drops those refused, then reports the connection
// connected with the recovery of the rooms that had a position. A
// connection that ended before its rooms were joined again reports their
// recovery without a state change.
func (s *session) rejoin(ctx context.Context) {
	s.c.mu.Lock()
	rooms := slices.Collect(maps.Keys(s.c.rooms))
	s.c.mu.Unlock()
	e := Event{Recovery: s.recover(ctx, rooms)}
	if s.alive() {
		e.State = StateConnected
	}
	if e.State != 0 || len(e.Recovery) > 0 {
		s.c.emit(e)
	}
}

// resync joins room again after a resync push and reports its recovery.
func (s *session) resync(room string) {
	if recovery := s.recover(s.ctx, []string{room}); len(recovery) > 0 {
		s.c.emit(Event{Recovery: recovery})
	}
}

// alive reports whether the connection is still open.
func (s *session) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// recover joins rooms again and returns the recovery of those that had a
// position (nil when none had): an open gap's start, else the last one
// seen. A rejoin that did not complete (the connection ended first, or
// the answer was malformed) reports false; a refused room is reported by
// Left instead. A gap's recovery is reported by its latest rejoin only;
// an incomplete one leaves the gap open for the next.
func (s *session) recover(ctx context.Context, rooms []string) map[string]bool {
	recovery := make(map[string]bool)
	for _, room := range rooms {
		p, had, join := s.c.startRejoin(room)
		var since *protocol.Position
		if had {
			since = &p
		}
		res, joined := s.joinRetrying(ctx, room, since)
		switch {
		case !had:
		case !joined:
			if s.c.latestRejoin(room, join) {
				recovery[room] = false
			}
		default:
			if complete, latest := s.c.endRejoin(room, join); latest {
				recovery[room] = res.Recovered != nil && *res.Recovered && complete
			}
		}
	}
	if len(recovery) == 0 {
		return nil
	}
	return recovery
}

// joinRetrying joins room, retrying with backoff while the gateway answers
// unavailable or does not answer, for as long as the connection lasts. A
// refusal forgets the room. It reports whether the room was joined.
func (s *session) joinRetrying(ctx context.Context, room string, since *protocol.Position) (protocol.JoinResult, bool) {
	for attempt := 0; ; attempt++ {
		f, err := s.request(ctx, protocol.Request{Type: protocol.TypeJoin, Room: room, Since: since})
		var res protocol.JoinResult
		switch {
		case err == nil && f.Error == nil:
			if json.Unmarshal(f.Result, &res) != nil {
				return res, false
			}
			return res, true
		case err == nil && f.Error.Code != protocol.ErrUnavailable:
			s.c.forget(room)
			s.c.emit(Event{Left: room, Reason: string(f.Error.Code)})
			return res, false
		}
		select {
		case <-s.done:
			return res, false
		case <-ctx.Done():
			return res, false
		case <-time.After(Backoff(attempt, s.c.opts.MinBackoff, s.c.opts.MaxBackoff)):
		}
	}
}

// ping sends an application ping and grades the connection by it.
func (s *session) ping(ctx context.Context) {
	start := time.Now()
	ts, _ := json.Marshal(start.UnixMilli())
	_, err := s.request(ctx, protocol.Request{Type: protocol.TypePing, TS: ts})
	s.graded(start, err)
}

// graded grades the connection by a ping sent at start that ended with
// err (a reply, error or not, is nil). A ping cut short by the caller or
// by the connection's end grades nothing: the end makes it unknown.
func (s *session) graded(start time.Time, err error) {
	switch {
	case err == nil:
		s.c.grade(s, time.Since(start), true)
	case errors.Is(err, context.Canceled), !s.alive():
	default: // no answer in time, or the frame could not be sent
		s.c.grade(s, time.Since(start), false)
	}
}

// refresh sends a fresh token and returns when to refresh next.
func (s *session) refresh(ctx context.Context) time.Duration {
	retry := max(s.c.opts.RefreshMargin/4, time.Second)
	tctx, cancel := context.WithTimeout(ctx, s.c.opts.RequestTimeout)
	tok, err := s.c.opts.Tokens.Token(tctx)
	cancel()
	if err != nil {
		return retry
	}
	f, err := s.request(ctx, protocol.Request{Type: protocol.TypeRefresh, Token: tok})
	if err != nil || f.Error != nil {
		return retry
	}
	var res protocol.RefreshResult
	if json.Unmarshal(f.Result, &res) != nil {
		return retry
	}
	exp := time.UnixMilli(res.ExpiresAt)
	s.c.mu.Lock()
	old := s.c.expires
	s.c.expires = exp
	s.c.mu.Unlock()
	if !exp.After(old) { // the source had nothing newer yet
		return retry
	}
	s.c.emit(Event{Refreshed: true})
	return s.c.untilRefresh()
}

// request sends req with a fresh id and waits for its reply.
func (s *session) request(ctx context.Context, req protocol.Request) (protocol.Frame, error) {
	ctx, cancel := context.WithTimeout(ctx, s.c.opts.RequestTimeout)
	defer cancel()
	req.ID = s.c.ids.Add(1)
	ch := make(chan protocol.Frame, 1)
	s.mu.Lock()
	s.pending[req.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, req.ID)
		s.mu.Unlock()
	}()

	b, err := json.Marshal(req)
	if err != nil {
		return protocol.Frame{}, err
	}
	if err := s.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return protocol.Frame{}, fmt.Errorf("send %s: %w", req.Type, err)
	}
	select {
	case f := <-ch:
		return f, nil
	case <-s.done:
		return protocol.Frame{}, ErrNotConnected
	case <-ctx.Done():
		return protocol.Frame{}, ctx.Err()
	}
}

// read dispatches frames until the connection ends.
func (s *session) read() {
	defer close(s.done)
	for {
		_, b, err := s.ws.Read(context.Background())
		if err != nil {
			s.mu.Lock()
			s.readErr = err
			s.mu.Unlock()
			return
		}
		var f protocol.Frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		s.dispatch(f)
	}
}

func (s *session) dispatch(f protocol.Frame) {
	switch f.Type {
	case protocol.TypeReply:
		s.mu.Lock()
		ch := s.pending[f.ID]
		s.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	case protocol.TypeMessage:
		pos := protocol.Position{Epoch: f.Epoch, Offset: f.Offset}
		if !s.c.advance(f.Room, pos) {
			return // seen already: a recovery overlapping live messages
		}
		if h := s.c.opts.OnMessage; h != nil {
			s.c.handlers.Lock()
			h(Message{Room: f.Room, Data: f.Data, Position: pos})
			s.c.handlers.Unlock()
		}
	case protocol.TypeResync:
		// Opened here, before any later frame: the gap starts at the
		// position held now, and later live messages are told apart by
		// offset until the rejoin answers.
		s.c.openGap(f.Room)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.resync(f.Room)
		}()
	case protocol.TypeConnected:
		s.onConnected(f)
	case protocol.TypeLeft:
		s.c.forget(f.Room)
		s.c.emit(Event{Left: f.Room, Reason: f.Reason})
	}
}

// advance records pos as the last position seen in room and reports
// whether the message is new: one at or before the last position of the
// same epoch is a repeat, except past an open gap's start, where each
// offset is new once (while the gap's set has room).
func (c *Client) advance(room string, pos protocol.Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, seen := c.last[room]
	sameEpoch := seen && last.Epoch == pos.Epoch
	ahead := !seen || sameEpoch && pos.Offset > last.Offset
	if g := c.gaps[room]; g != nil && g.covers(pos) {
		// A replayed message older than the live ones moves nothing.
		if !g.add(pos.Offset) && !ahead {
			return false
		}
	} else if sameEpoch && !ahead {
		return false
	} else {
		ahead = true // later, or a new epoch
	}
	if _, ok := c.rooms[room]; ok && ahead {
		c.last[room] = pos
	}
	return true
}

func (s *session) onConnected(f protocol.Frame) {
	var res protocol.AuthResult
	if json.Unmarshal(f.Result, &res) != nil {
		return
	}
	s.c.mu.Lock()
	for _, room := range res.Rooms {
		if strings.HasPrefix(room, protocol.UserPrefix) {
			s.c.rooms[room] = true // its history is recovered like any room's
		}
	}
	s.c.expires = time.UnixMilli(res.ExpiresAt)
	s.c.sess = s
	s.c.mu.Unlock()
	select {
	case <-s.connected:
	default:
		close(s.connected)
	}
}

func (c *Client) forget(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	delete(c.last, room)
	delete(c.gaps, room)
	c.mu.Unlock()
}

func (c *Client) current() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Join adds room to the client's rooms. While connected it waits for the
// server's answer and returns a *ServerError when refused; while
// disconnected it returns nil and the room is joined on connect.
func (c *Client) Join(ctx context.Context, room string) error {
	c.mu.Lock()
	c.rooms[room] = true
	c.mu.Unlock()
	s := c.current()
	if s == nil {
		return nil
	}
	f, err := s.request(ctx, protocol.Request{Type: protocol.TypeJoin, Room: room})
	if err != nil {
		return err
	}
	if f.Error != nil {
		c.forget(room)
		return f.Error
	}
	return nil
}

// Leave removes room from the client's rooms.
func (c *Client) Leave(ctx context.Context, room string) error {
	c.forget(room)
	s := c.current()
	if s == nil {
		return nil
	}
	f, err := s.request(ctx, protocol.Request{Type: protocol.TypeLeave, Room: room})
	if err != nil {
		return err
	}
	if f.Error != nil && f.Error.Code != protocol.ErrNotMember {
		return f.Error
	}
	return nil
}

// Publish sends data (a JSON value) to a conversation room the client has
// joined and returns its position.
func (c *Client) Publish(ctx context.Context, room string, data json.RawMessage) (protocol.Position, error) {
	return c.PublishIdempotent(ctx, room, data, "")
}

// PublishIdempotent is Publish with an idempotency key (at most 128
// bytes): retried with the same key within the gateway's window after an
// error, the message is stored and delivered once, and the reply carries
// its original position.
func (c *Client) PublishIdempotent(ctx context.Context, room string, data json.RawMessage, key string) (protocol.Position, error) {
	s := c.current()
	if s == nil {
		return protocol.Position{}, ErrNotConnected
	}
	req := protocol.Request{Type: protocol.TypePublish, Room: room, Data: data, IdempotencyKey: key}
	f, err := s.request(ctx, req)
	if err != nil {
		return protocol.Position{}, err
	}
	if f.Error != nil {
		return protocol.Position{}, f.Error
	}
	var res protocol.PublishResult
	if err := json.Unmarshal(f.Result, &res); err != nil {
		return protocol.Position{}, errors.New("gatewayclient: malformed publish reply")
	}
	return protocol.Position{Epoch: res.Epoch, Offset: res.Offset}, nil
}

// Ping measures one round trip now and grades the connection by it, as
// the periodic ping does: a reply grades its round trip, no reply within
// ctx's deadline or RequestTimeout grades poor, and a cancelled ctx grades
// nothing.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	s := c.current()
	if s == nil {
		return 0, ErrNotConnected
	}
	start := time.Now()
	f, err := s.request(ctx, protocol.Request{Type: protocol.TypePing, TS: json.RawMessage(`0`)})
	s.graded(start, err)
	if err != nil {
		return 0, err
	}
	if f.Error != nil {
		return 0, f.Error
	}
	return max(time.Since(start), 1), nil
}

// Conversations returns the ids of the conversations the user may join.
func (c *Client) Conversations(ctx context.Context) ([]string, error) {
	s := c.current()
	if s == nil {
		return nil, ErrNotConnected
	}
	f, err := s.request(ctx, protocol.Request{Type: protocol.TypeConversations})
	if err != nil {
		return nil, err
	}
	if f.Error != nil {
		return nil, f.Error
	}
	var res protocol.ConversationsResult
	if err := json.Unmarshal(f.Result, &res); err != nil {
		return nil, errors.New("gatewayclient: malformed conversations reply")
	}
	return res.Conversations, nil
}
