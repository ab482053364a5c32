package gatewayclient_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient"
	"switchboard/libs/gatewayclient/protocol"
)

const (
	resyncRoom  = "conversation:42"
	resyncEpoch = "e1"
	resyncAt    = 3 // the position the client holds when resync arrives
)

// resyncGateway is a fake gateway: on the first join it sends messages
// 1..resyncAt, a resync push, then the live offsets; on a join with since
// it replays every offset after since up to last and answers recovered.
func resyncGateway(t *testing.T, live []uint64, last uint64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		send := func(v any) error {
			b, _ := json.Marshal(v)
			return ws.Write(ctx, websocket.MessageText, b)
		}
		message := func(off uint64) error {
			return send(protocol.Frame{Type: protocol.TypeMessage, Room: resyncRoom,
				Data: json.RawMessage(`{}`), Epoch: resyncEpoch, Offset: off})
		}
		reply := func(id uint64, v any) error {
			b, _ := json.Marshal(v)
			return send(protocol.Frame{Type: protocol.TypeReply, ID: id, Result: b})
		}
		auth, _ := json.Marshal(protocol.AuthResult{User: "u1",
			ExpiresAt: time.Now().Add(time.Hour).UnixMilli()})
		if send(protocol.Frame{Type: protocol.TypeConnected, Result: auth}) != nil {
			return
		}
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var req protocol.Request
			if json.Unmarshal(b, &req) != nil {
				t.Errorf("client sent %q", b)
				return
			}
			if err := answer(req, message, reply, send, live, last); err != nil {
				return
			}
		}
	})
}

func answer(req protocol.Request, message func(uint64) error,
	reply func(uint64, any) error, send func(any) error,
	live []uint64, last uint64) error {
	if req.Type != protocol.TypeJoin {
		return reply(req.ID, struct{}{})
	}
	if req.Since != nil {
		for off := req.Since.Offset + 1; off <= last; off++ {
			if err := message(off); err != nil {
				return err
			}
		}
		ok := true
		return reply(req.ID, protocol.JoinResult{Room: req.Room, Recovered: &ok})
	}
	if err := reply(req.ID, protocol.JoinResult{Room: req.Room}); err != nil {
		return err
	}
	for off := uint64(1); off <= resyncAt; off++ {
		if err := message(off); err != nil {
			return err
		}
	}
	if err := send(protocol.Frame{Type: protocol.TypeResync, Room: resyncRoom}); err != nil {
		return err
	}
	for _, off := range live {
		if err := message(off); err != nil {
			return err
		}
	}
	return nil
}

func offsets(from, to uint64) []uint64 {
	var out []uint64
	for off := from; off <= to; off++ {
		out = append(out, off)
	}
	return out
}

// A resync's missing messages replayed after newer live ones are
// delivered, none twice, and the recovery is reported as the gateway
// answered; a gap past the client's bound is reported not recovered.
func TestResyncDeliversMessagesAfterLaterLiveOnes(t *testing.T) {
	tests := []struct {
		name      string
		live      []uint64
		last      uint64
		wantAll   bool // every offset 1..last delivered
		recovered bool
	}{
		{name: "one live message", live: []uint64{7}, last: 7, wantAll: true, recovered: true},
		{name: "several live messages", live: []uint64{6, 8, 9}, last: 9, wantAll: true, recovered: true},
		{name: "gap past the bound", live: offsets(5, 10_005), last: 10_005, recovered: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(resyncGateway(t, tt.live, tt.last))
			t.Cleanup(srv.Close)

			var mu sync.Mutex
			seen := map[uint64]int{}
			var recovery map[string]bool
			c := gatewayclient.New(gatewayclient.Options{
				URL:    "ws" + srv.URL[len("http"):],
				Tokens: staticToken("tok"),
				OnMessage: func(m gatewayclient.Message) {
					mu.Lock()
					seen[m.Position.Offset]++
					mu.Unlock()
				},
				OnEvent: func(e gatewayclient.Event) {
					if e.Recovery != nil {
						mu.Lock()
						recovery = e.Recovery
						mu.Unlock()
					}
				},
			})
			ctx, cancel := context.WithCancel(context.Background())
			if err := c.Join(ctx, resyncRoom); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); _ = c.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			deadline := time.Now().Add(10 * time.Second)
			for {
				mu.Lock()
				got := recovery
				mu.Unlock()
				if got != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no recovery event")
				}
				time.Sleep(5 * time.Millisecond)
			}

			mu.Lock()
			defer mu.Unlock()
			if recovery[resyncRoom] != tt.recovered {
				t.Fatalf("recovery = %v, want %s: %v", recovery, resyncRoom, tt.recovered)
			}
			for off, n := range seen {
				if n > 1 {
					t.Fatalf("offset %d delivered %d times", off, n)
				}
			}
			for _, off := range append(offsets(1, resyncAt), tt.live...) {
				if seen[off] != 1 {
					t.Fatalf("live offset %d delivered %d times, want 1", off, seen[off])
				}
			}
			if tt.wantAll {
				for off := uint64(1); off <= tt.last; off++ {
					if seen[off] != 1 {
						t.Fatalf("offset %d delivered %d times, want 1 (got %v)", off, seen[off], seen)
					}
				}
			}
			if got, ok := c.Position(resyncRoom); !ok || got.Offset != tt.last {
				t.Fatalf("position %v (%v), want offset %d", got, ok, tt.last)
			}
		})
	}
}
