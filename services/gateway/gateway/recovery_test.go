package gateway_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
)

// A join naming a position gets the history after it, then the live
// messages published meanwhile, with no gap and no duplicate at the seam,
// on either broker; a position the history does not reach is answered
// "not recoverable" and the room is joined all the same.
func TestJoinSince(t *testing.T) {
	a := startAuth(t)
	rs := redistest.Start(t)
	for name, url := range map[string]string{"memory": "", "redis": rs.URL()} {
		t.Run(name, func(t *testing.T) {
			room := "conversation:seam-" + name
			a.Grant("ann", "seam-"+name)
			r := startReplica(t, a, url, nil)
			var first protocol.PublishResult
			for i := range 5 {
				res := publishHTTP(t, r, room, fmt.Sprint(i))
				if i == 0 {
					first = res
				}
			}

			c := dial(t, r, a.Issue("ann", "s-"+name, time.Hour))
			c.connected()
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 5; i < 60; i++ {
					publishHTTP(t, r, room, fmt.Sprint(i))
				}
			})
			since := protocol.Position{Epoch: first.Epoch, Offset: first.Offset + 1}
			reply := c.call(protocol.Request{Type: protocol.TypeJoin, Room: room, Since: &since})
			wg.Wait()
			var res protocol.JoinResult
			if reply.Error != nil || json.Unmarshal(reply.Result, &res) != nil || res.Recovered == nil || !*res.Recovered {
				t.Fatalf("join with a kept position answered %+v", reply)
			}
			var seen []uint64
			for want := since.Offset + 1; want <= first.Offset+59; want++ {
				m := c.message(room)
				seen = append(seen, m.Offset)
				if m.Offset != want || m.Epoch != first.Epoch {
					t.Fatalf("got offset %d of %s, want %d: a gap or a duplicate at the seam (%v)", m.Offset, m.Epoch, want, seen)
				}
			}

			tests := []struct {
				name  string
				since protocol.Position
			}{
				{"another epoch", protocol.Position{Epoch: "feedfacefeedface", Offset: 3}},
				{"ahead of the room", protocol.Position{Epoch: first.Epoch, Offset: 1 << 40}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					reply := c.call(protocol.Request{Type: protocol.TypeJoin, Room: room, Since: &tt.since})
					var res protocol.JoinResult
					if reply.Error != nil || json.Unmarshal(reply.Result, &res) != nil || res.Recovered == nil || *res.Recovered {
						t.Fatalf("join answered %+v, want not recoverable", reply)
					}
					publishHTTP(t, r, room, `"still live"`)
					if m := c.message(room); string(m.Data) != `"still live"` {
						t.Fatalf("after a refused recovery got %s", m.Data)
					}
				})
			}
		})
	}
}

// A publish retried with its key is delivered once and answers with the
// original position, through the client protocol and the HTTP API.
func TestIdempotentPublish(t *testing.T) {
	a := startAuth(t)
	a.Grant("ann", "idem")
	r := startReplica(t, a, "", nil)
	c := dial(t, r, a.Issue("ann", "s", time.Hour))
	c.connected()
	c.join("conversation:idem")
	var got []protocol.PublishResult
	for range 2 {
		f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:idem",
			Data: json.RawMessage(`"once"`), IdempotencyKey: "k"})
		var res protocol.PublishResult
		if f.Error != nil || json.Unmarshal(f.Result, &res) != nil {
			t.Fatalf("publish answered %+v", f)
		}
		got = append(got, res)
	}
	if got[0] != got[1] {
		t.Fatalf("repeats answered %+v", got)
	}
	c.message("conversation:idem")
	publishHTTP(t, r, "conversation:idem", `"next"`)
	if m := c.message("conversation:idem"); string(m.Data) != `"next"` || m.Offset != got[0].Offset+1 {
		t.Fatalf("after the repeat got %s at %d: the repeat was delivered", m.Data, m.Offset)
	}
	long := make([]byte, protocol.MaxKeyBytes+1)
	for i := range long {
		long[i] = 'k'
	}
	f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:idem", Data: json.RawMessage(`1`), IdempotencyKey: string(long)})
	if errCode(f) != protocol.ErrBadRequest {
		t.Fatalf("a %d-byte key answered %+v", len(long), f)
	}
}
