package gateway_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A frame sent in the same packet as the handshake is not lost when the
// connection's buffers are replaced.
func TestFrameWithHandshake(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	conn, err := net.Dial("tcp", r.http[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))

	handshake := "GET /ws HTTP/1.1\r\nHost: " + r.http[len("http://"):] + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Authorization: Bearer " + a.Issue("alice", "s1", time.Hour) + "\r\n\r\n"
	if _, err := conn.Write(append([]byte(handshake), maskedText(`{"id":7,"type":"ping","ts":5}`)...)); err != nil {
		t.Fatal(err)
	}

	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, "101") {
		t.Fatalf("handshake answer %q: %v", status, err)
	}
	for line := ""; line != "\r\n"; {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	for {
		payload := readFrame(t, br)
		if strings.Contains(payload, `"id":7`) {
			if !strings.Contains(payload, `"ts":5`) {
				t.Fatalf("reply %s does not echo the timestamp", payload)
			}
			return
		}
	}
}

// maskedText encodes a short text frame as a client must: masked.
func maskedText(s string) []byte {
	key := []byte{1, 2, 3, 4}
	out := []byte{0x81, 0x80 | byte(len(s))}
	out = append(out, key...)
	for i := range len(s) {
		out = append(out, s[i]^key[i%4])
	}
	return out
}

// readFrame reads one unmasked server frame and returns its payload.
func readFrame(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		io.ReadFull(br, ext[:])
		n = int(binary.BigEndian.Uint16(ext[:]))
	case 127:
		t.Fatal("unexpectedly long frame")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return string(p)
}
