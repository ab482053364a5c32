package gatewayclient_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient"
	"switchboard/libs/gatewayclient/protocol"
)

const recoveryRoom = "conversation:7"

// joinAnswer is how the fake gateway of one connection answers a join
// naming a position.
type joinAnswer int

const (
	answerRecovered joinAnswer = iota
	answerNotRecoverable
	answerDrop // close the connection without a reply
)

// fakeConn is one connection of the fake gateway.
type fakeConn struct {
	ws  *websocket.Conn
	ctx context.Context
}

func (c fakeConn) send(v any) error {
	b, _ := json.Marshal(v)
	return c.ws.Write(c.ctx, websocket.MessageText, b)
}

func (c fakeConn) reply(id uint64, v any) error {
	b, _ := json.Marshal(v)
	return c.send(protocol.Frame{Type: protocol.TypeReply, ID: id, Result: b})
}

func (c fakeConn) message(off uint64) error {
	return c.send(protocol.Frame{Type: protocol.TypeMessage, Room: recoveryRoom,
		Data: json.RawMessage(`{}`), Epoch: "e1", Offset: off})
}

// recoveryGateway is a fake gateway whose connection n sends offset n+1
// before its join reply (unless it drops the join), answers a join naming a position with script[n]
// (no reply past the script: the client's last connection stays open)
// and, while more connections are scripted, closes on the client's ping.
func recoveryGateway(t *testing.T, script []joinAnswer) http.Handler {
	var conns atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		n := int(conns.Add(1)) - 1
		c := fakeConn{ws: ws, ctx: r.Context()}
		auth, _ := json.Marshal(protocol.AuthResult{User: "u1", ExpiresAt: time.Now().Add(time.Hour).UnixMilli()})
		if c.send(protocol.Frame{Type: protocol.TypeConnected, Result: auth}) != nil {
			return
		}
		for {
			_, b, err := ws.Read(c.ctx)
			if err != nil {
				return
			}
			var req protocol.Request
			if json.Unmarshal(b, &req) != nil {
				t.Errorf("client sent %q", b)
				return
			}
			if !c.serve(req, n, script) {
				return
			}
		}
	})
}

// serve answers req on connection n and reports whether to go on.
func (c fakeConn) serve(req protocol.Request, n int, script []joinAnswer) bool {
	last := n >= len(script)-1
	switch {
	case req.Type == protocol.TypePing:
		return last && c.reply(req.ID, struct{}{}) == nil
	case req.Type != protocol.TypeJoin:
		return c.reply(req.ID, struct{}{}) == nil
	case req.Since != nil && script[n] == answerDrop:
		return false
	}
	if c.message(uint64(n+1)) != nil {
		return false
	}
	res := protocol.JoinResult{Room: req.Room}
	if req.Since != nil {
		ok := script[n] == answerRecovered
		res.Recovered = &ok
	}
	return c.reply(req.ID, res) == nil
}

// seen is what a client's handlers were called with.
type seen struct {
	mu         sync.Mutex
	events     []gatewayclient.Event // those with a State or a Recovery
	offsets    []uint64
	atEvent    []int // len(offsets) when each event came
	inside     atomic.Int32
	concurrent atomic.Bool // a handler ran while another did
}

func (s *seen) enter() {
	if s.inside.Add(1) != 1 {
		s.concurrent.Store(true)
	}
	time.Sleep(time.Millisecond)
}

func (s *seen) onMessage(m gatewayclient.Message) {
	s.enter()
	defer s.inside.Add(-1)
	s.mu.Lock()
	s.offsets = append(s.offsets, m.Position.Offset)
	s.mu.Unlock()
}

func (s *seen) onEvent(e gatewayclient.Event) {
	s.enter()
	defer s.inside.Add(-1)
	if e.State != gatewayclient.StateConnected && e.Recovery == nil {
		return
	}
	s.mu.Lock()
	s.events = append(s.events, e)
	s.atEvent = append(s.atEvent, len(s.offsets))
	s.mu.Unlock()
}

// Every reconnect is reported by one StateConnected event carrying the
// recovery of the room, after the messages the recovery sent; a rejoin cut
// short by the connection's end is reported false, without a state.
func TestRecoveryReportedWithTheState(t *testing.T) {
	script := []joinAnswer{answerRecovered, answerDrop, answerRecovered, answerNotRecoverable}
	srv := httptest.NewServer(recoveryGateway(t, script))
	t.Cleanup(srv.Close)
	s := &seen{}
	c := gatewayclient.New(gatewayclient.Options{
		URL: "ws" + srv.URL[len("http"):], Tokens: staticToken("tok"),
		OnMessage: s.onMessage, OnEvent: s.onEvent,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	c.Join(ctx, recoveryRoom)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	connected, none := gatewayclient.StateConnected, gatewayclient.State(0)
	want := []struct {
		state    gatewayclient.State
		recovery map[string]bool
		offsets  int // messages delivered before the event
	}{
		{connected, nil, 1},
		{none, map[string]bool{recoveryRoom: false}, 1},
		{connected, map[string]bool{recoveryRoom: true}, 2},
		{connected, map[string]bool{recoveryRoom: false}, 3},
	}
	events, at := s.wait(t, len(want))
	for i, w := range want {
		e := events[i]
		if e.State != w.state || !maps.Equal(e.Recovery, w.recovery) || at[i] != w.offsets {
			t.Fatalf("event %d: state %v, recovery %v after %d messages; want %v, %v after %d",
				i, e.State, e.Recovery, at[i], w.state, w.recovery, w.offsets)
		}
	}
	if s.concurrent.Load() {
		t.Fatal("two handlers ran at once")
	}
}

// wait returns the first n events and the messages seen before each.
func (s *seen) wait(t *testing.T, n int) ([]gatewayclient.Event, []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		events, at := append([]gatewayclient.Event(nil), s.events...), append([]int(nil), s.atEvent...)
		s.mu.Unlock()
		if len(events) >= n {
			time.Sleep(50 * time.Millisecond) // no more may come
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.events) != n {
				t.Fatalf("%d events, want %d: %+v", len(s.events), n, s.events)
			}
			return events, at
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events, want %d: %+v", len(events), n, events)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
