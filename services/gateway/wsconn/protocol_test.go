package wsconn_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"switchboard/services/gateway/wsconn"
)

// closeFrame builds a masked close frame with code and reason.
func closeFrame(code uint16, reason string) []byte {
	return masked(opClose, append(binary.BigEndian.AppendUint16(nil, code), reason...))
}

// cat joins frames into one stream.
func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestReadRefuses(t *testing.T) {
	const small = 1024
	hi := []byte("hi")
	tests := []struct {
		name    string
		deflate bool // the client offers permessage-deflate
		stream  []byte
		tooBig  bool // ErrTooBig rather than a ProtocolError
	}{
		{name: "unmasked frame", stream: frame(opText, true, 0, hi, false)},
		{name: "RSV2", stream: frame(opText, true, rsv2, hi, true)},
		{name: "RSV3", stream: frame(opText, true, rsv3, hi, true)},
		{name: "RSV1 without compression", stream: frame(opText, true, rsv1, compress(t, hi), true)},
		{name: "RSV1 on a continuation", deflate: true, stream: cat(
			frame(opText, false, rsv1, compress(t, hi), true),
			frame(opContinuation, true, rsv1, nil, true),
		)},
		{name: "RSV1 on a ping", deflate: true, stream: frame(opPing, true, rsv1, nil, true)},
		{name: "opcode 0x3", stream: masked(0x3, hi)},
		{name: "opcode 0xB", stream: masked(0xB, nil)},
		{name: "ping of 126 bytes", stream: masked(opPing, make([]byte, 126))},
		{name: "fragmented ping", stream: frame(opPing, false, 0, nil, true)},
		{name: "fragmented close", stream: frame(opClose, false, 0, nil, true)},
		{name: "continuation without a message", stream: masked(opContinuation, hi)},
		{name: "text inside a fragmented message", stream: cat(
			frame(opText, false, 0, []byte("a"), true),
			masked(opText, []byte("b")),
		)},
		{name: "length with the top bit set", stream: append(frameHeader(fin|opText, 1<<63, true), 'x')},
		{name: "close of 1 byte", stream: masked(opClose, []byte{3})},
		{name: "close 999", stream: closeFrame(999, "")},
		{name: "close 1004", stream: closeFrame(1004, "")},
		{name: "close 1005", stream: closeFrame(1005, "")},
		{name: "close 1006", stream: closeFrame(1006, "")},
		{name: "close 1015", stream: closeFrame(1015, "")},
		{name: "close 2000", stream: closeFrame(2000, "")},
		{name: "close 5000", stream: closeFrame(5000, "")},
		{name: "close reason not UTF-8", stream: closeFrame(1000, "\xff\xfe")},
		{name: "compressed garbage", deflate: true,
			stream: frame(opText, true, rsv1, []byte{0xFF, 0xFF, 0xFF}, true)},

		{name: "message over the limit", tooBig: true, stream: masked(opText, make([]byte, small+1))},
		{name: "fragments over the limit", tooBig: true, stream: cat(
			frame(opText, false, 0, make([]byte, small/2), true),
			frame(opContinuation, false, 0, make([]byte, small/2), true),
			masked(opContinuation, []byte("x")),
		)},
		{name: "fragment whose length overflows the sum", tooBig: true, stream: cat(
			frame(opText, false, 0, []byte("a"), true),
			frameHeader(fin|opContinuation, 1<<63-1, true),
		)},
		{name: "compressed message inflating over the limit", deflate: true, tooBig: true,
			stream: frame(opText, true, rsv1, compress(t, make([]byte, 100*small)), true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, wsconn.Options{CompressionThreshold: 1}, func(s *server, c *wsconn.Conn) {
				s.echo(c, small)
			})
			offer := ""
			if tt.deflate {
				offer = deflateOffer
			}
			c := dialRaw(t, s, offer)

			c.write(tt.stream)

			err := s.lastError(t)
			var pe wsconn.ProtocolError
			switch {
			case tt.tooBig && !errors.Is(err, wsconn.ErrTooBig):
				t.Fatalf("ReadMessage = %v, want ErrTooBig", err)
			case !tt.tooBig && !errors.As(err, &pe):
				t.Fatalf("ReadMessage = %v, want a ProtocolError", err)
			}
			c.readEnd()
		})
	}
}

// TestLimitBeforePayload declares a message longer than the limit and
// sends none of it: the refusal must not wait for the payload.
func TestLimitBeforePayload(t *testing.T) {
	s := startServer(t, wsconn.Options{}, func(s *server, c *wsconn.Conn) { s.echo(c, 64<<10) })
	c := dialRaw(t, s, "")

	c.write(frameHeader(fin|opText, 1<<20, true))

	if err := s.lastError(t); !errors.Is(err, wsconn.ErrTooBig) {
		t.Fatalf("ReadMessage = %v, want ErrTooBig", err)
	}
}

func TestMessageAtTheLimit(t *testing.T) {
	const small = 1024
	s := startServer(t, wsconn.Options{CompressionThreshold: 1}, func(s *server, c *wsconn.Conn) {
		s.echo(c, small)
	})
	c := dialRaw(t, s, deflateOffer)
	p := bytes.Repeat([]byte("x"), small)

	c.write(masked(opText, p))
	c.write(frame(opText, true, rsv1, compress(t, p), true))
	c.write(frame(opText, false, 0, p[:small/2], true), masked(opContinuation, p[small/2:]))

	for i := range 3 {
		if got := decompress(t, c.readFrame().payload); !bytes.Equal(got, p) {
			t.Fatalf("echo %d: %d bytes, want %d", i, len(got), small)
		}
	}
}

func TestPingIsAnsweredWithItsPayload(t *testing.T) {
	s := echoServer(t, wsconn.Options{})
	c := dialRaw(t, s, "")

	for _, n := range []int{0, 1, 4, 125} {
		p := randomText(n)
		c.write(masked(opPing, p))

		f := c.readFrame()
		if f.op != opPong || !bytes.Equal(f.payload, p) {
			t.Fatalf("ping of %d bytes answered with opcode %#x and %q", n, f.op, f.payload)
		}
	}
}

func TestPingInsideFragmentedMessage(t *testing.T) {
	s := echoServer(t, wsconn.Options{})
	c := dialRaw(t, s, "")

	c.write(
		frame(opText, false, 0, []byte("hel"), true),
		masked(opPing, []byte("p1")),
		frame(opContinuation, false, 0, nil, true),
		masked(opPong, []byte("unsolicited")),
		masked(opContinuation, []byte("lo")),
	)

	if f := c.readFrame(); f.op != opPong || string(f.payload) != "p1" {
		t.Fatalf("got opcode %#x %q, want the pong p1", f.op, f.payload)
	}
	if f := c.readFrame(); f.op != opText || string(f.payload) != "hello" {
		t.Fatalf("got opcode %#x %q, want the echo hello", f.op, f.payload)
	}
}

func TestCloseFromClient(t *testing.T) {
	tests := []struct {
		name     string
		frame    []byte
		want     wsconn.CloseError
		wantCode uint16 // in the server's answer
	}{
		{"without payload", masked(opClose, nil), wsconn.CloseError{Code: 1005}, 1000},
		{"normal", closeFrame(1000, ""), wsconn.CloseError{Code: 1000}, 1000},
		{"with reason", closeFrame(4000, "done here"), wsconn.CloseError{Code: 4000, Reason: "done here"}, 4000},
		{"going away", closeFrame(1001, "tab closed"), wsconn.CloseError{Code: 1001, Reason: "tab closed"}, 1001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := echoServer(t, wsconn.Options{})
			c := dialRaw(t, s, "")

			c.write(tt.frame)

			f := c.readFrame()
			if f.op != opClose || len(f.payload) < 2 {
				t.Fatalf("answered opcode %#x %q, want a close frame with a code", f.op, f.payload)
			}
			if code := binary.BigEndian.Uint16(f.payload); code != tt.wantCode {
				t.Errorf("answered with code %d, want %d", code, tt.wantCode)
			}
			var ce *wsconn.CloseError
			if err := s.lastError(t); !errors.As(err, &ce) || *ce != tt.want {
				t.Fatalf("ReadMessage = %v, want %v", err, &tt.want)
			}
		})
	}
}

func TestServerFrames(t *testing.T) {
	s := echoServer(t, wsconn.Options{})
	c := dialRaw(t, s, "")

	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := randomText(n)
			c.write(masked(opText, p))

			f := c.readFrame()
			if !f.fin || f.rsv != 0 || f.op != opText || f.masked {
				t.Errorf("frame fin %v, rsv %#x, opcode %#x, masked %v; want a final unmasked text frame",
					f.fin, f.rsv, f.op, f.masked)
			}
			if !bytes.Equal(f.payload, p) {
				t.Errorf("payload of %d bytes differs from the %d sent", len(f.payload), n)
			}
		})
	}
}

func TestServerCompressesFromThreshold(t *testing.T) {
	const threshold = 100
	s := echoServer(t, wsconn.Options{CompressionThreshold: threshold})
	c := dialRaw(t, s, deflateOffer)

	for _, tt := range []struct {
		n          int
		compressed bool // the client's frame
	}{{threshold - 1, false}, {threshold, false}, {threshold, true}, {5000, true}, {1, true}} {
		p := randomText(tt.n)
		if tt.compressed {
			c.write(frame(opText, true, rsv1, compress(t, p), true))
		} else {
			c.write(masked(opText, p))
		}

		f := c.readFrame()
		got := f.payload
		if f.rsv == rsv1 {
			got = decompress(t, got)
		}
		wantRsv := byte(0)
		if tt.n >= threshold {
			wantRsv = rsv1
		}
		if f.rsv != wantRsv {
			t.Errorf("%d bytes: reserved bits %#x, want %#x", tt.n, f.rsv, wantRsv)
		}
		if !bytes.Equal(got, p) {
			t.Errorf("%d bytes (compressed %v): echo differs", tt.n, tt.compressed)
		}
	}
}

// A run of control frames returns ErrNoMessage every 16 frames, though
// more are buffered, so that the caller can count them against its rate
// limit; every ping is still answered.
func TestControlRunsReturn(t *testing.T) {
	const pings = 40
	results := make(chan error, pings)
	done := make(chan struct{})
	s := startServer(t, wsconn.Options{}, func(s *server, c *wsconn.Conn) {
		defer close(done)
		for {
			_, _, err := c.ReadMessage(1024)
			if !errors.Is(err, wsconn.ErrNoMessage) {
				c.CloseNow()
				return
			}
			results <- err
		}
	})
	c := dialRaw(t, s, "")
	var flood [][]byte
	for range pings {
		flood = append(flood, masked(opPing, []byte("p")))
	}
	c.write(cat(flood...))
	for i := range pings {
		if f := c.readFrame(); f.op != opPong {
			t.Fatalf("frame %d: op %#x, want a pong", i, f.op)
		}
	}
	c.nc.Close()
	<-done
	// Each ErrNoMessage follows 16 pings at most: 40 take 3 or more.
	if n := len(results); n < 3 {
		t.Fatalf("%d ErrNoMessage for %d pings, want at least 3", n, pings)
	}
}

// A message interrupted by more than 1,024 control frames is refused.
func TestControlFloodInsideMessage(t *testing.T) {
	s := startServer(t, wsconn.Options{}, func(s *server, c *wsconn.Conn) { s.echo(c, 1024) })
	c := dialRaw(t, s, "")
	stream := [][]byte{frame(opText, false, 0, []byte("a"), true)}
	for range 1025 {
		stream = append(stream, masked(opPong, nil))
	}
	c.write(cat(stream...))
	var perr wsconn.ProtocolError
	if err := s.lastError(t); !errors.As(err, &perr) {
		t.Fatalf("ReadMessage = %v, want a ProtocolError", err)
	}
}
