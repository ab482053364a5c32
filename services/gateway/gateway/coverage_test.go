package gateway_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/gateway"
)

// redisSubs is what Redis itself says about one channel and about the
// pub/sub connections of the replicas, each named by its client_name.
type redisSubs struct {
	t  *testing.T
	rc *redis.Client
}

// numSub returns the number of connections subscribed to channel.
func (s redisSubs) numSub(channel string) int64 {
	s.t.Helper()
	n, err := s.rc.PubSubNumSub(context.Background(), channel).Result()
	if err != nil {
		s.t.Fatal(err)
	}
	return n[channel]
}

// of returns the channels subscribed by the connections named name, from
// CLIENT LIST's sub field.
func (s redisSubs) of(name string) int {
	s.t.Helper()
	list, err := s.rc.ClientList(context.Background()).Result()
	if err != nil {
		s.t.Fatal(err)
	}
	total := 0
	for line := range strings.SplitSeq(list, "\n") {
		fields := map[string]string{}
		for kv := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(kv, "=")
			fields[k] = v
		}
		if fields["name"] != name {
			continue
		}
		n, _ := strconv.Atoi(fields["sub"])
		total += n
	}
	return total
}

// Two replicas on one Redis: a room's channel is subscribed by the replica
// with members of it and by no other, stays subscribed while one member is
// left, and is unsubscribed when the last member leaves or disconnects
// without leaving.
func TestSubscriptionFollowsMembersOnTwoReplicas(t *testing.T) {
	rs := redistest.Start(t)
	subs := redisSubs{t: t, rc: rs.Client()}
	a := startAuth(t)
	ra := startReplica(t, a, rs.URL()+"?client_name=gw-a", nil)
	rb := startReplica(t, a, rs.URL()+"?client_name=gw-b", nil)
	const room, channel = "conversation:c5", "test:{conversation:c5}"
	a.Grant("alice", "c5")
	a.Grant("bob", "c5")

	carol := dial(t, rb, a.Issue("carol", "s3", time.Hour)) // B has members, of other rooms
	carol.connected()
	alice := dial(t, ra, a.Issue("alice", "s1", time.Hour))
	bob := dial(t, ra, a.Issue("bob", "s2", time.Hour))
	alice.connected()
	bob.connected()
	baseA, baseB := subs.of("gw-a"), subs.of("gw-b")
	if baseA < 3 || baseB < 2 { // the user rooms and each replica's own channel
		t.Fatalf("replicas' pub/sub connections hold %d and %d channels: client_name not applied?", baseA, baseB)
	}
	if n := subs.numSub(channel); n != 0 {
		t.Fatalf("before any join: %d subscribers", n)
	}

	alice.join(room)
	bob.join(room)
	checkSubs := func(when string, wantNum int64, wantA int) {
		t.Helper()
		if n := subs.numSub(channel); n != wantNum {
			t.Fatalf("%s: %d connections subscribed to %s, want %d", when, n, channel, wantNum)
		}
		if n := subs.of("gw-a"); n != wantA {
			t.Fatalf("%s: replica A holds %d channels, want %d", when, n, wantA)
		}
		if n := subs.of("gw-b"); n != baseB {
			t.Fatalf("%s: replica B, with no member of %s, holds %d channels, want %d", when, room, n, baseB)
		}
	}
	checkSubs("two members on A", 1, baseA+1)

	// A publish through B reaches A's members; B publishes without
	// subscribing.
	publishHTTP(t, rb, room, `1`)
	alice.message(room)
	bob.message(room)
	checkSubs("after a publish through B", 1, baseA+1)

	if f := alice.call(protocol.Request{Type: protocol.TypeLeave, Room: room}); f.Error != nil {
		t.Fatalf("leave: %v", f.Error)
	}
	// The message reaching bob shows the channel is still in use; any
	// unsubscribe batched by the leave would have gone out before.
	publishHTTP(t, rb, room, `2`)
	if m := bob.message(room); string(m.Data) != `2` {
		t.Fatalf("bob got %+v after alice left", m)
	}
	checkSubs("one member left", 1, baseA+1)

	bob.ws.CloseNow() // the last member disconnects without leaving
	poll(t, "unsubscribe after the last member disconnected", func() bool {
		return subs.numSub(channel) == 0 && subs.of("gw-a") == baseA-1 // and user:bob
	})
	checkSubs("no member", 0, baseA-1)

	alice.join(room)
	checkSubs("alice back", 1, baseA)
	if f := alice.call(protocol.Request{Type: protocol.TypeLeave, Room: room}); f.Error != nil {
		t.Fatalf("leave: %v", f.Error)
	}
	poll(t, "unsubscribe after the last member left", func() bool { return subs.numSub(channel) == 0 })
	checkSubs("the last member left", 0, baseA-1)
}

// rawFrame is one WebSocket frame as the server sent it.
type rawFrame struct {
	fin, rsv1 bool
	opcode    byte
	payload   []byte
}

// readRawFrame reads one unmasked server frame.
func readRawFrame(r *bufio.Reader) (rawFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{fin: h[0]&0x80 != 0, rsv1: h[0]&0x40 != 0, opcode: h[0] & 0x0f}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 || n > 1<<20 {
		return f, fmt.Errorf("masked or oversized server frame (%d bytes)", n)
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

// rawMessage is one WebSocket data message: its wire bytes and whether
// its first frame had RSV1 (permessage-deflate) set.
type rawMessage struct {
	compressed bool
	wire       []byte
}

// text returns the message's JSON text, inflated when compressed.
func (m rawMessage) text(t *testing.T) []byte {
	t.Helper()
	if !m.compressed {
		return m.wire
	}
	// RFC 7692: append the empty stored block the sender removed.
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(m.wire), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
	b, err := io.ReadAll(fr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("inflate: %v", err)
	}
	return b
}

// dialRaw upgrades a bare TCP connection to r's /ws, offering
// permessage-deflate, and returns a reader of its frames.
func dialRaw(t *testing.T, r *replica, token string) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(r.http, "http://")
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(nc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"+
		"Authorization: Bearer %s\r\n\r\n", addr, token)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		!strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("upgrade answered %s, extensions %q", resp.Status, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	return nc, br
}

// nextRawMessage reads frames up to the end of the next data message;
// control frames (pings) are skipped.
func nextRawMessage(t *testing.T, br *bufio.Reader) rawMessage {
	t.Helper()
	var m rawMessage
	first := true
	for {
		f, err := readRawFrame(br)
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		if f.opcode >= 8 {
			continue
		}
		if first {
			m.compressed = f.rsv1
			first = false
		}
		m.wire = append(m.wire, f.payload...)
		if f.fin {
			return m
		}
	}
}

// Messages below GATEWAY_COMPRESSION_THRESHOLD go out as they are; larger
// ones go out compressed (RSV1 set) and smaller on the wire.
func TestCompressionThreshold(t *testing.T) {
	const threshold = 1024
	a := startAuth(t)
	r := startReplica(t, a, "", func(c *gateway.Config) { c.CompressionThreshold = threshold })
	_, br := dialRaw(t, r, a.Issue("alice", "s1", time.Hour))

	if m := nextRawMessage(t, br); m.compressed || !bytes.Contains(m.wire, []byte(`"connected"`)) {
		t.Fatalf("connected push: compressed %v, %q", m.compressed, m.wire)
	}
	small := `"` + strings.Repeat("s", threshold/4) + `"`
	large := `"` + strings.Repeat("l", 4*threshold) + `"`
	publishHTTP(t, r, "user:alice", small)
	publishHTTP(t, r, "user:alice", large)

	for _, want := range []struct {
		data       string
		compressed bool
	}{{small, false}, {large, true}} {
		m := nextRawMessage(t, br)
		var f protocol.Frame
		if err := json.Unmarshal(m.text(t), &f); err != nil || string(f.Data) != want.data {
			t.Fatalf("message of %d bytes: %v, got %.60q", len(want.data), err, m.text(t))
		}
		if m.compressed != want.compressed {
			t.Fatalf("message of %d bytes (threshold %d): compressed %v, want %v",
				len(want.data), threshold, m.compressed, want.compressed)
		}
		if want.compressed && len(m.wire) >= len(want.data) {
			t.Fatalf("compressed message of %d bytes took %d on the wire", len(want.data), len(m.wire))
		}
	}
}

// Error codes of the catalog without a test of their own elsewhere.
func TestForbiddenAndAlreadyAuthenticated(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	c := dial(t, r, a.Issue("alice", "s1", time.Hour))
	c.connected()

	t.Run("publish to the own user room", func(t *testing.T) {
		f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "user:alice", Data: json.RawMessage(`"spoof"`)})
		if errCode(f) != protocol.ErrForbidden {
			t.Fatalf("got %+v, want forbidden", f)
		}
		publishHTTP(t, r, "user:alice", `"sentinel"`)
		if m := c.message("user:alice"); string(m.Data) != `"sentinel"` {
			t.Fatalf("the refused publish was delivered: %+v", m)
		}
	})
	t.Run("publish to another user's room", func(t *testing.T) {
		f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "user:bob", Data: json.RawMessage(`1`)})
		if errCode(f) != protocol.ErrForbidden {
			t.Fatalf("got %+v, want forbidden", f)
		}
	})
	t.Run("leave the user room", func(t *testing.T) {
		if f := c.call(protocol.Request{Type: protocol.TypeLeave, Room: "user:alice"}); errCode(f) != protocol.ErrForbidden {
			t.Fatalf("got %+v, want forbidden", f)
		}
		publishHTTP(t, r, "user:alice", `"still a member"`)
		if m := c.message("user:alice"); string(m.Data) != `"still a member"` {
			t.Fatalf("got %+v", m)
		}
	})
	t.Run("auth on a connection authenticated by header", func(t *testing.T) {
		f := c.call(protocol.Request{Type: protocol.TypeAuth, Token: a.Issue("alice", "s2", time.Hour)})
		if errCode(f) != protocol.ErrAlreadyAuthenticated {
			t.Fatalf("got %+v, want already_authenticated", f)
		}
		if p := c.call(protocol.Request{Type: protocol.TypePing}); p.Error != nil {
			t.Fatalf("ping afterwards: %v", p.Error)
		}
	})
	t.Run("second auth frame", func(t *testing.T) {
		fc := dial(t, r, "")
		if f := fc.call(protocol.Request{Type: protocol.TypeAuth, Token: a.Issue("bob", "s3", time.Hour)}); f.Error != nil {
			t.Fatalf("first auth: %v", f.Error)
		}
		f := fc.call(protocol.Request{Type: protocol.TypeAuth, Token: a.Issue("carol", "s4", time.Hour)})
		if errCode(fc.call(protocol.Request{Type: protocol.TypePing})) != "" || errCode(f) != protocol.ErrAlreadyAuthenticated {
			t.Fatalf("second auth: got %+v, want already_authenticated on a usable connection", f)
		}
		publishHTTP(t, r, "user:bob", `"still bob"`)
		if m := fc.message("user:bob"); string(m.Data) != `"still bob"` {
			t.Fatalf("got %+v", m)
		}
	})
}

// When Redis does not confirm the user room's subscription within
// GATEWAY_REQUEST_TIMEOUT, the new connection is closed with 3007; once
// Redis answers again, connections are accepted.
func TestUserRoomJoinFailureCloses3007(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r := startReplica(t, a, rs.URL(), func(c *gateway.Config) { c.Conn.RequestTimeout = 300 * time.Millisecond })

	rs.Pause()
	c := dial(t, r, a.Issue("alice", "s1", time.Hour))
	code := c.closed()
	rs.Resume()
	if code != int(protocol.CloseInternal) {
		t.Fatalf("close code %d, want %d", code, protocol.CloseInternal)
	}
	poll(t, "closes_total{code=3007} at 1", func() bool {
		return metric(t, r, `switchboard_gateway_closes_total{code="3007"}`) == 1
	})
	if !protocol.Reconnect(code) {
		t.Fatal("3007 is not in the reconnect range")
	}
	poll(t, "a connection accepted once Redis answers", func() bool {
		c := dial(t, r, a.Issue("alice", "s2", time.Hour))
		defer c.ws.CloseNow()
		select {
		case f, ok := <-c.frames:
			return ok && f.Type == protocol.TypeConnected
		case <-time.After(wait):
			return false
		}
	})
}

// One connection's join, publish and leave move every series of the
// gateway's metrics that they concern.
func TestMetricsFollowTraffic(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r := startReplica(t, a, rs.URL(), func(c *gateway.Config) { c.Conn.RequestTimeout = 300 * time.Millisecond })
	a.Grant("alice", "m1")
	const (
		conns    = "switchboard_gateway_connections"
		rooms    = "switchboard_gateway_rooms"
		members  = "switchboard_gateway_members"
		bytesIn  = "switchboard_gateway_bytes_in_total"
		bytesOut = "switchboard_gateway_bytes_out_total"
		latency  = "switchboard_gateway_publish_to_write_seconds_count"
		redisErr = "switchboard_gateway_redis_errors_total"
		miss     = `switchboard_gateway_auth_cache_total{result="miss"}`
		hit      = `switchboard_gateway_auth_cache_total{result="hit"}`
		framesIn = `switchboard_gateway_frames_in_total{type="publish"}`
		pubOK    = `switchboard_gateway_publishes_total{result="ok",source="client"}`
	)
	m := func(series string) float64 { return max(metric(t, r, series), 0) } // absent: 0
	want := func(what, series string, v float64) {
		t.Helper()
		poll(t, fmt.Sprintf("%s: %s = %v", what, series, v), func() bool { return m(series) == v })
	}
	if m(redisErr) != 0 || m(rooms) != 0 || m(members) != 0 {
		t.Fatalf("a fresh replica: redis errors %v, rooms %v, members %v", m(redisErr), m(rooms), m(members))
	}

	token := a.Issue("alice", "s1", time.Hour)
	c := dial(t, r, token)
	c.connected()
	want("connected", conns, 1)
	want("connected", rooms, 1) // user:alice
	want("connected", members, 1)
	want("first validation", miss, 1)

	c.join("conversation:m1")
	want("joined", rooms, 2)
	want("joined", members, 2)

	in0, out0, lat0 := m(bytesIn), m(bytesOut), m(latency)
	f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:m1", Data: json.RawMessage(`{"n":1}`)})
	if f.Error != nil {
		t.Fatalf("publish: %v", f.Error)
	}
	c.message("conversation:m1")
	poll(t, "bytes and latency of the publish", func() bool {
		return m(bytesIn) > in0 && m(bytesOut) > out0 && m(latency) > lat0
	})
	want("published", framesIn, 1)
	want("published", pubOK, 1)

	c2 := dial(t, r, token) // the same token again: from the cache
	c2.connected()
	want("second connection", hit, 1)
	want("second connection", miss, 1)
	want("second connection", members, 3) // user:alice has two members now

	rs.Pause()
	f = c.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:m1", Data: json.RawMessage(`2`)})
	rs.Resume()
	if errCode(f) != protocol.ErrUnavailable {
		t.Fatalf("publish with Redis paused: %+v, want unavailable", f)
	}
	if m(redisErr) < 1 {
		t.Fatalf("%s = %v after a failed publish", redisErr, m(redisErr))
	}
	want("failed publish", `switchboard_gateway_publishes_total{result="error",source="client"}`, 1)

	if f := c.call(protocol.Request{Type: protocol.TypeLeave, Room: "conversation:m1"}); f.Error != nil {
		t.Fatalf("leave: %v", f.Error)
	}
	want("left", rooms, 1)
	want("left", members, 2)

	c.ws.CloseNow()
	c2.ws.CloseNow()
	want("closed", conns, 0)
	want("closed", rooms, 0)
	want("closed", members, 0)
}
