package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"switchboard/libs/gatewayclient/protocol"
)

// The clients of the fan-out, idle and storm modes speak WebSocket on a
// raw socket and are read by a few epoll loops (one per core; elsewhere
// than Linux, a goroutine each), not by a goroutine each with a WebSocket
// library: at tens of thousands of deliveries a second, a
// goroutine woken per message and a full WebSocket library took about a
// core of the two the gateways are measured on. A client answers pings
// and reads the server's unmasked text frames; it does not offer
// permessage-deflate, so none arrives compressed.

// client is one connection of the load generator.
type client struct {
	i    int // its index, the recorder's key
	nc   net.Conn
	fd   int
	loop *readLoop

	// Read by the loop only.
	buf []byte // bytes read and not yet framed

	wmu sync.Mutex // pongs
}

// dialClient opens a WebSocket to addr with the token, joins room and
// waits for the reply; its later frames are read by loop.
func dialClient(ctx context.Context, addr, token, room string, i int, loop *readLoop) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	c := &client{i: i, nc: nc, fd: -1, loop: loop}
	br, err := c.handshake(addr, token)
	if err == nil {
		err = c.join(br, room)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		c.buf = append(c.buf, b...)
	}
	if err := loop.add(c); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// handshake sends the upgrade request and checks the answer.
func (c *client) handshake(addr, token string) (*bufio.Reader, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	if _, err := c.nc.Write([]byte(req)); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c.nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("upgrade answered %s", resp.Status)
	}
	return br, nil
}

// join sends the join request and reads frames until its reply.
func (c *client) join(br *bufio.Reader, room string) error {
	req, _ := json.Marshal(protocol.Request{ID: 1, Type: protocol.TypeJoin, Room: room})
	if err := c.write(opText, req); err != nil {
		return err
	}
	for {
		op, p, err := readFrame(br)
		if err != nil {
			return err
		}
		if op != opText {
			continue
		}
		var f protocol.Frame
		if json.Unmarshal(p, &f) == nil && f.Type == protocol.TypeReply && f.ID == 1 {
			if f.Error != nil {
				return f.Error
			}
			return nil
		}
	}
}

// Frame opcodes the client meets.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// write sends one masked frame, as a client must.
func (c *client) write(op byte, p []byte) error {
	var mask [4]byte
	rand.Read(mask[:])
	b := []byte{0x80 | op}
	switch {
	case len(p) < 126:
		b = append(b, 0x80|byte(len(p)))
	case len(p) <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(len(p)))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(len(p)))
	}
	b = append(b, mask[:]...)
	for i, x := range p {
		b = append(b, x^mask[i%4])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// readFrame reads one server frame from br, blocking.
func readFrame(br *bufio.Reader) (byte, []byte, error) {
	for {
		b, _ := br.Peek(br.Buffered())
		if op, p, n := parseFrame(b); n > 0 {
			p = bytes.Clone(p)
			br.Discard(n)
			return op, p, nil
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return 0, nil, err
		}
	}
}

// parseFrame reads an unmasked frame from b: its opcode, payload and
// length, or n == 0 when b does not hold it whole yet.
func parseFrame(b []byte) (op byte, p []byte, n int) {
	if len(b) < 2 {
		return 0, nil, 0
	}
	op, n = b[0]&0x0F, 2
	length := int(b[1] & 0x7F)
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0
		}
		length, n = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0
		}
		length, n = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) < n+length {
		return 0, nil, 0
	}
	return op, b[n : n+length], n + length
}

// Close closes the connection.
func (c *client) Close() {
	c.loop.remove(c)
	c.nc.Close()
}

// frames handles c's whole frames, recording the messages in rec, and
// keeps the rest. The client's loop calls it, one client at a time.
func frames(c *client, rec *recorder) {
	now := time.Now()
	b := c.buf
	for {
		op, p, n := parseFrame(b)
		if n == 0 {
			break
		}
		switch op {
		case opText:
			if seq, ts, ok := message(p); ok {
				rec.add(c.i, seq, now.Sub(time.Unix(0, ts)))
			}
		case opPing:
			go c.write(opPong, bytes.Clone(p))
		}
		b = b[n:]
	}
	c.buf = append(c.buf[:0], b...)
}

// message reads the sequence number and send time of a message frame
// carrying the load generator's payload ({"seq":N,"ts":N,...} in data).
func message(p []byte) (seq, ts int64, ok bool) {
	if !bytes.HasPrefix(p, []byte(`{"type":"message"`)) {
		return 0, 0, false
	}
	seq, ok1 := intField(p, `"seq":`)
	ts, ok2 := intField(p, `"ts":`)
	return seq, ts, ok1 && ok2
}

// intField reads the integer after the first occurrence of key.
func intField(p []byte, key string) (int64, bool) {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := p[i+len(key):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	v, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return v, err == nil
}
