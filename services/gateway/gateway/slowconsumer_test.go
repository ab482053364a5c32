package gateway_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/gateway"
)

// A slow consumer on the real path: messages published through the HTTP
// API of one replica reach, through Redis, two members on the other; one
// member stops reading. It is closed with the slow-consumer code, and the
// member that reads receives every message in order, each of those
// published while the slow member's queue was filling before that member
// was closed: the fan-out never waited for it.
func TestSlowConsumerThroughBroker(t *testing.T) {
	const (
		queueBytes = 64 << 10
		room       = "conversation:busy"
	)
	a := startAuth(t)
	rs := redistest.Start(t)
	small := func(c *gateway.Config) { c.Conn.MaxMessageBytes, c.Conn.QueueBytes = 16<<10, queueBytes }
	r1 := startReplica(t, a, rs.URL(), small)
	r2 := startReplica(t, a, rs.URL(), small)
	a.Grant("fast", "busy")
	a.Grant("slow", "busy")

	fast := dial(t, r1, a.Issue("fast", "s1", time.Hour))
	fast.connected()
	fast.join(room)
	slow := dialStalled(t, r1, a.Issue("slow", "s2", time.Hour), room)

	// One message at a time: each is published, read by the fast member,
	// and then the slow member's close is looked for, so readWhileOpen
	// messages were read by the fast member while the slow one was open.
	payload := strings.Repeat("x", 8<<10)
	slowClosed := func() bool { return metric(t, r1, `switchboard_gateway_closes_total{code="3002"}`) == 1 }
	publish := func(n int) {
		publishHTTP(t, r2, room, fmt.Sprintf(`{"n":%d,"p":%q}`, n, payload))
		if got := messageNumber(t, fast.message(room)); got != n {
			t.Fatalf("the fast member got message %d, want %d", got, n)
		}
	}
	readWhileOpen, n := 0, 0
	for {
		if n == 5000 {
			t.Fatalf("the slow member is still open after %d messages", n)
		}
		publish(n)
		n++
		if slowClosed() {
			break
		}
		readWhileOpen = n
	}
	for end := n + 20; n < end; n++ { // the fast member goes on
		publish(n)
	}

	code, got, err := slow.drain()
	switch {
	case code != 0 && code != int(protocol.CloseSlowConsumer):
		t.Fatalf("the slow member got close code %d, want %d", code, protocol.CloseSlowConsumer)
	case code == 0 && !socketClosed(err):
		t.Fatalf("the slow member got no close frame and its socket is not closed: %v", err)
	}
	t.Logf("the fast member read %d messages while the slow one was open; the slow one read %d, then close code %d (0: cut, %v)",
		readWhileOpen, len(got), code, err)
	for i, n := range got {
		if n != i {
			t.Fatalf("the slow member's message %d is number %d: the messages it got are not in order", i, n)
		}
	}
	// What the slow member never got was in its queue when it was closed;
	// the fast member had read it by then.
	if len(got) >= readWhileOpen {
		t.Fatalf("the slow member got %d messages, the fast member only %d while the slow one was open: "+
			"nothing was queued for the slow member when it was closed", len(got), readWhileOpen)
	}
	poll(t, "the slow member leaving the room", func() bool { return r1.g.Hub().Members(room) == 1 })
}

func messageNumber(t *testing.T, f protocol.Frame) int {
	t.Helper()
	var body struct{ N int }
	if err := json.Unmarshal(f.Data, &body); err != nil {
		t.Fatalf("message %s: %v", f.Data, err)
	}
	return body.N
}

// socketClosed reports whether a read ended because the server closed or
// cut the connection, rather than by the read deadline.
func socketClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// stalledConn is a raw WebSocket client with a small receive buffer that
// stops reading once it has joined a room.
type stalledConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// dialStalled connects with token, joins room, reads the answers and then
// reads nothing more until drain.
func dialStalled(t *testing.T, r *replica, token, room string) *stalledConn {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return err
	}}
	host := strings.TrimPrefix(r.http, "http://")
	conn, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wait))
	handshake := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Authorization: Bearer " + token + "\r\n\r\n"
	join := fmt.Sprintf(`{"id":1,"type":"join","room":%q}`, room)
	if _, err := conn.Write(append([]byte(handshake), maskedText(join)...)); err != nil {
		t.Fatal(err)
	}
	s := &stalledConn{conn: conn, br: bufio.NewReader(conn)}
	status, err := s.br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake answer %q: %v", status, err)
	}
	for line := ""; line != "\r\n"; {
		if line, err = s.br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	for {
		op, p, err := s.next()
		if err != nil {
			t.Fatalf("waiting for the join reply: %v", err)
		}
		var f protocol.Frame
		if op != opText || json.Unmarshal(p, &f) != nil || f.Type != protocol.TypeReply || f.ID != 1 {
			continue
		}
		if f.Error != nil {
			t.Fatalf("join %s: %v", room, f.Error)
		}
		return s
	}
}

const (
	opText  = 1
	opClose = 8
)

// next reads one unmasked server frame.
func (s *stalledConn) next() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(s.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(s.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(s.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("a frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(s.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// drain reads again: the message numbers still buffered for the client,
// then the close code, or 0 and the error that ended the read when the
// connection was cut without a close frame.
func (s *stalledConn) drain() (code int, numbers []int, err error) {
	s.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		op, p, err := s.next()
		if err != nil {
			return 0, numbers, err
		}
		switch op {
		case opClose:
			if len(p) < 2 {
				return 0, numbers, errors.New("a close frame without a code")
			}
			return int(binary.BigEndian.Uint16(p)), numbers, nil
		case opText:
			var f protocol.Frame
			if json.Unmarshal(p, &f) != nil || f.Type != protocol.TypeMessage {
				continue
			}
			var body struct{ N int }
			if err := json.Unmarshal(f.Data, &body); err != nil {
				return 0, numbers, err
			}
			numbers = append(numbers, body.N)
		}
	}
}
