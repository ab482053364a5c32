package gateway_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
)

// Two replicas share one Redis: a message published on one reaches the
// members on the other, and nobody else.
func TestFanOutAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r1 := startReplica(t, a, rs.URL(), nil)
	r2 := startReplica(t, a, rs.URL(), nil)
	a.Grant("alice", "c1")
	a.Grant("bob", "c1")

	alice := dial(t, r1, a.Issue("alice", "s1", time.Hour))
	bob := dial(t, r2, a.Issue("bob", "s2", time.Hour))
	carol := dial(t, r2, a.Issue("carol", "s3", time.Hour))
	for _, c := range []*client{alice, bob, carol} {
		c.connected()
	}
	alice.join("conversation:c1")
	bob.join("conversation:c1")
	if f := carol.call(protocol.Request{Type: protocol.TypeJoin, Room: "conversation:c1"}); errCode(f) != protocol.ErrForbidden {
		t.Fatalf("carol's join: got %+v, want forbidden", f)
	}

	t.Run("client publish reaches the other replica", func(t *testing.T) {
		f := alice.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:c1", Data: json.RawMessage(`{"n":1}`)})
		var res protocol.PublishResult
		if f.Error != nil || json.Unmarshal(f.Result, &res) != nil || res.Offset == 0 || res.Epoch == "" {
			t.Fatalf("publish reply %+v", f)
		}
		m := bob.message("conversation:c1")
		if string(m.Data) != `{"n":1}` || m.Offset != res.Offset || m.Epoch != res.Epoch {
			t.Fatalf("bob got %+v, want data {\"n\":1} at %+v", m, res)
		}
		alice.message("conversation:c1") // the publisher is a member too
	})
	t.Run("backend publish reaches the other replica", func(t *testing.T) {
		res := publishHTTP(t, r2, "conversation:c1", `{"n":2}`)
		m := alice.message("conversation:c1")
		if string(m.Data) != `{"n":2}` || m.Offset != res.Offset {
			t.Fatalf("alice got %+v, want offset %d", m, res.Offset)
		}
		bob.message("conversation:c1")
	})
	t.Run("user room across replicas", func(t *testing.T) {
		publishHTTP(t, r1, "user:carol", `"hi carol"`)
		if m := carol.message("user:carol"); string(m.Data) != `"hi carol"` {
			t.Fatalf("carol got %+v", m)
		}
	})
	t.Run("the refused member received nothing", func(t *testing.T) {
		publishHTTP(t, r1, "conversation:c1", `{"n":3}`)
		publishHTTP(t, r1, "user:carol", `"sentinel"`)
		m := carol.expect("any message", func(f protocol.Frame) bool { return f.Type == protocol.TypeMessage })
		if m.Room != "user:carol" || string(m.Data) != `"sentinel"` {
			t.Fatalf("carol got %+v before her sentinel", m)
		}
	})
	t.Run("offsets increase by one", func(t *testing.T) {
		first := publishHTTP(t, r1, "conversation:c2", `1`)
		second := publishHTTP(t, r2, "conversation:c2", `2`)
		if second.Offset != first.Offset+1 || second.Epoch != first.Epoch {
			t.Fatalf("positions %+v then %+v", first, second)
		}
	})
}

// A replica subscribes to a room's channel only while it has members of it.
func TestSubscribesOnlyWithMembers(t *testing.T) {
	rs := redistest.Start(t)
	rc := rs.Client()
	a := startAuth(t)
	r1 := startReplica(t, a, rs.URL(), nil)
	a.Grant("alice", "c9")
	const channel = "test:{conversation:c9}"
	subscribers := func() int64 {
		n, err := rc.PubSubNumSub(context.Background(), channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[channel]
	}

	if n := subscribers(); n != 0 {
		t.Fatalf("before any member: %d subscribers", n)
	}
	alice := dial(t, r1, a.Issue("alice", "s1", time.Hour))
	alice.connected()
	alice.join("conversation:c9")
	if n := subscribers(); n != 1 {
		t.Fatalf("after the join: %d subscribers, want 1 (the join waits for the subscription)", n)
	}
	roomChannels := func() []string {
		var out []string
		for _, pattern := range []string{"test:{user:*", "test:{conversation:*"} {
			chans, err := rc.PubSubChannels(context.Background(), pattern).Result()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, chans...)
		}
		return out
	}
	if chans := roomChannels(); len(chans) != 2 { // user:alice and conversation:c9
		t.Fatalf("channels %v, want the user room and the conversation", chans)
	}

	if f := alice.call(protocol.Request{Type: protocol.TypeLeave, Room: "conversation:c9"}); f.Error != nil {
		t.Fatalf("leave: %v", f.Error)
	}
	poll(t, "unsubscribe after the last member left", func() bool { return subscribers() == 0 })
	alice.ws.CloseNow()
	poll(t, "no room channel once the connection is gone", func() bool { return len(roomChannels()) == 0 })
}
