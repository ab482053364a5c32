package wsconn_test

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"switchboard/services/gateway/wsconn"
)

// closeAfterError is a server that reads one message and, on the error
// it expects, closes with 3504 (or 3502) while Drain reads the client's
// answer, as the gateway does; it reports how long Close took.
func closeAfterError(t *testing.T, want error) (*server, chan time.Duration) {
	took := make(chan time.Duration, 1)
	s := startServer(t, wsconn.Options{}, func(s *server, c *wsconn.Conn) {
		_, _, err := c.ReadMessage(1024)
		code := uint16(3502)
		if errors.Is(err, wsconn.ErrTooBig) {
			code = 3504
		}
		if !errors.Is(err, want) && !errors.As(err, new(wsconn.ProtocolError)) {
			t.Errorf("ReadMessage = %v, want %v", err, want)
		}
		start := time.Now()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			c.Close(code, "refused")
		}()
		c.Drain()
		<-closed
		took <- time.Since(start)
	})
	return s, took
}

// expectClose reads the server's close frame and checks its code.
func expectClose(t *testing.T, c *rawClient, code uint16) {
	t.Helper()
	f := c.readFrame()
	if f.op != opClose || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != code {
		t.Fatalf("got op %#x payload %q, want a close frame with %d", f.op, f.payload, code)
	}
}

// After a message over the limit, Drain skips its payload, reads the
// frames after it and ends at the client's close frame: Close returns
// without waiting out its 5 s.
func TestDrainSkipsTheRefusedPayload(t *testing.T) {
	s, took := closeAfterError(t, wsconn.ErrTooBig)
	c := dialRaw(t, s, "")

	// The payload is framed so that, parsed as frames, it would be a
	// protocol error: Drain must skip it, not parse it.
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = 0xFF
	}
	c.write(masked(opText, payload), masked(opText, []byte("after")))
	expectClose(t, c, 3504)
	c.write(closeFrame(3504, ""))
	c.readEnd()

	if d := <-took; d >= 4*time.Second {
		t.Fatalf("Close took %v: Drain did not see the client's close frame", d)
	}
}

// After a protocol error the stream cannot be parsed: Drain reads and
// drops bytes until the client hangs up.
func TestDrainAfterProtocolError(t *testing.T) {
	s, took := closeAfterError(t, nil)
	c := dialRaw(t, s, "")

	c.write(frame(opText, true, 0, []byte("unmasked"), false))
	expectClose(t, c, 3502)
	c.write([]byte("garbage that is no frame"))
	c.nc.Close()

	if d := <-took; d >= 4*time.Second {
		t.Fatalf("Close took %v after the client hung up", d)
	}
}
