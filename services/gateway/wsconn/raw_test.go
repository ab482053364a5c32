package wsconn_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Opcodes and bits of RFC 6455, section 5.2, for building frames by hand.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	fin  = 0x80
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10
)

// exampleKey is the Sec-WebSocket-Key of RFC 6455, section 1.3.
const exampleKey = "dGhlIHNhbXBsZSBub25jZQ=="

// deflateOffer is the permessage-deflate offer of the raw clients that
// compress.
const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// mask is the masking key of every frame the raw client sends; its bytes
// differ so that unmasking at a wrong offset shows.
var mask = [4]byte{0xA1, 0xB2, 0xC3, 0xD4}

// handshakeHeader is a valid opening handshake's header.
func handshakeHeader() http.Header {
	return http.Header{
		"Upgrade":               {"websocket"},
		"Connection":            {"Upgrade"},
		"Sec-Websocket-Key":     {exampleKey},
		"Sec-Websocket-Version": {"13"},
	}
}

// rawClient speaks WebSocket over a plain TCP connection, frame by frame.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// openRaw sends a handshake with header h, followed in the same write by
// early, and reads the answer. The test's cleanup closes the connection.
func openRaw(t *testing.T, s *server, h http.Header, early []byte) (*rawClient, *http.Response) {
	t.Helper()
	nc, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(wait))

	var req bytes.Buffer
	req.WriteString("GET / HTTP/1.1\r\nHost: " + s.Listener.Addr().String() + "\r\n")
	h.Write(&req)
	req.WriteString("\r\n")
	req.Write(early)
	if _, err := nc.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}

	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("read the handshake's answer: %v", err)
	}
	return c, resp
}

// dialRaw opens a WebSocket, offering extensions when not empty.
func dialRaw(t *testing.T, s *server, extensions string) *rawClient {
	t.Helper()
	h := handshakeHeader()
	if extensions != "" {
		h.Set("Sec-WebSocket-Extensions", extensions)
	}
	c, resp := openRaw(t, s, h, nil)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %s", resp.Status)
	}
	return c
}

// frameHeader builds a frame's header; masked headers end with mask.
func frameHeader(first byte, length uint64, masked bool) []byte {
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	b := []byte{first}
	switch {
	case length < 126:
		b = append(b, maskBit|byte(length))
	case length <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(length))
	default:
		b = binary.BigEndian.AppendUint64(append(b, maskBit|127), length)
	}
	if masked {
		b = append(b, mask[:]...)
	}
	return b
}

// frame builds a whole frame; rsv holds the reserved bits to set.
func frame(op byte, final bool, rsv byte, payload []byte, masked bool) []byte {
	first := op | rsv
	if final {
		first |= fin
	}
	b := frameHeader(first, uint64(len(payload)), masked)
	start := len(b)
	b = append(b, payload...)
	if masked {
		for i := range payload {
			b[start+i] ^= mask[i%4]
		}
	}
	return b
}

// masked builds a final, masked frame without reserved bits.
func masked(op byte, payload []byte) []byte { return frame(op, true, 0, payload, true) }

// write sends bytes in one write.
func (c *rawClient) write(frames ...[]byte) {
	c.t.Helper()
	if _, err := c.nc.Write(bytes.Join(frames, nil)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// writeFrame sends one frame.
func (c *rawClient) writeFrame(op byte, final bool, rsv byte, payload []byte, masked bool) {
	c.t.Helper()
	c.write(frame(op, final, rsv, payload, masked))
}

// serverFrame is a frame as the server sent it.
type serverFrame struct {
	fin     bool
	rsv     byte // the three reserved bits, in place
	op      byte
	masked  bool
	payload []byte
}

var errMasked = errors.New("the server masked a frame")

// readFrame reads the server's next frame.
func (c *rawClient) readFrame() serverFrame {
	c.t.Helper()
	f, err := c.tryReadFrame()
	if err != nil {
		c.t.Fatalf("read a frame: %v", err)
	}
	return f
}

func (c *rawClient) tryReadFrame() (serverFrame, error) {
	var b [2]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		return serverFrame{}, err
	}
	f := serverFrame{fin: b[0]&fin != 0, rsv: b[0] & 0x70, op: b[0] & 0x0F, masked: b[1]&0x80 != 0}
	length := uint64(b[1] & 0x7F)
	switch length {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, err
		}
		length = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, err
		}
		length = binary.BigEndian.Uint64(ext[:])
	}
	if f.masked {
		return f, errMasked
	}
	f.payload = make([]byte, length)
	_, err := io.ReadFull(c.br, f.payload)
	return f, err
}

// readEnd checks that the server closes the connection, after the
// frames it may send first.
func (c *rawClient) readEnd() {
	c.t.Helper()
	for {
		_, err := c.tryReadFrame()
		var ne net.Error
		switch {
		case err == nil:
		case errors.Is(err, errMasked):
			c.t.Fatal(err)
		case errors.As(err, &ne) && ne.Timeout():
			c.t.Fatal("the server did not close the connection")
		default: // the end of the stream, or a reset
			return
		}
	}
}

// deflateTail is what a sync flush ends with and a sender strips
// (RFC 7692, section 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xFF, 0xFF}

// compress returns p as a permessage-deflate payload.
func compress(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), deflateTail)
}

// decompress inflates a permessage-deflate payload.
func decompress(t *testing.T, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)))
	out, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("inflate: %v", err)
	}
	return out
}
