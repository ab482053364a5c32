package wsconn_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"switchboard/services/gateway/wsconn"
)

// memConn is a net.Conn that reads a fixed stream and drops what is
// written to it.
type memConn struct{ r io.Reader }

func (c memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c memConn) Close() error                     { return nil }
func (c memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c memConn) SetDeadline(time.Time) error      { return nil }
func (c memConn) SetReadDeadline(time.Time) error  { return nil }
func (c memConn) SetWriteDeadline(time.Time) error { return nil }

// hijackRecorder hands Upgrade a memConn, and with it the bytes of the
// stream the HTTP server would have buffered already.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	conn net.Conn
	br   *bufio.Reader
}

func (w hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(w.br, bufio.NewWriter(w.conn)), nil
}

// fuzzLimit is the read limit of FuzzReadMessage.
const fuzzLimit = 4096

// FuzzReadMessage reads messages from arbitrary bytes after a valid
// handshake, with or without compression negotiated and with or without
// the first bytes buffered by the HTTP server: reading must end in an
// error without a panic, and no message may exceed the limit.
func FuzzReadMessage(f *testing.F) {
	for _, seed := range [][]byte{
		masked(opText, []byte("hello")),
		masked(opBinary, make([]byte, 300)),
		masked(opText, make([]byte, 70000)),
		bytes.Join([][]byte{
			frame(opText, false, 0, []byte("hel"), true),
			masked(opPing, []byte("p")),
			masked(opContinuation, []byte("lo")),
		}, nil),
		frame(opText, true, rsv1, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, true), // "hello"
		frame(opText, true, rsv1, []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'}, true),
		masked(opPong, nil),
		closeFrame(1000, "bye"),
		masked(opClose, []byte{3}),
		frameHeader(fin|opText, 1<<20, true),
		cat(frame(opText, false, 0, []byte("a"), true), frameHeader(fin|opContinuation, 1<<16, true)),
		cat(frame(opText, false, 0, []byte("a"), true), frameHeader(fin|opContinuation, 1<<63-1, true)),
		frame(opText, true, 0, []byte("unmasked"), false),
	} {
		f.Add(seed, false, false)
		f.Add(seed, true, true)
	}

	f.Fuzz(func(t *testing.T, stream []byte, deflate, early bool) {
		src := bytes.NewReader(stream)
		br := bufio.NewReader(src)
		if early {
			br.Peek(1) // buffers the stream's first bytes, as the HTTP server may
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header = handshakeHeader()
		if deflate {
			r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate")
		}
		w := hijackRecorder{httptest.NewRecorder(), memConn{src}, br}

		c, err := wsconn.Upgrade(w, r, wsconn.Options{CompressionThreshold: 1})
		if err != nil {
			t.Fatalf("Upgrade: %v", err)
		}
		defer c.CloseNow()
		for {
			_, p, err := c.ReadMessage(fuzzLimit)
			if len(p) > fuzzLimit {
				t.Fatalf("a message of %d bytes, over the limit of %d", len(p), fuzzLimit)
			}
			if err != nil && !errors.Is(err, wsconn.ErrNoMessage) {
				return
			}
		}
	})
}
