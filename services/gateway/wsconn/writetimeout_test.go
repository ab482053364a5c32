package wsconn_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"switchboard/services/gateway/wsconn"
)

// writer starts a server whose handler hands its connection to the test
// and holds the request until the test ends.
func writer(t *testing.T, o wsconn.Options) (*rawClient, *wsconn.Conn) {
	t.Helper()
	conns := make(chan *wsconn.Conn, 1)
	done := make(chan struct{})
	s := startServer(t, o, func(_ *server, c *wsconn.Conn) {
		conns <- c
		<-done
		c.CloseNow()
	})
	t.Cleanup(func() { close(done) })
	rc := dialRaw(t, s, "")
	select {
	case c := <-conns:
		return rc, c
	case <-time.After(wait):
		t.Fatal("the server did not take the connection")
		return nil, nil
	}
}

// A write the peer does not take fails with os.ErrDeadlineExceeded once
// the socket's buffers are full, instead of blocking for good.
func TestWriteToAPeerThatDoesNotReadTimesOut(t *testing.T) {
	_, c := writer(t, wsconn.Options{WriteTimeout: 200 * time.Millisecond})
	p := bytes.Repeat([]byte("x"), 64<<10)
	var err error
	for i := 0; i < 10_000 && err == nil; i++ { // at most 640 MB, far past any socket buffer
		err = c.WriteText(p)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writing to a peer that does not read: %v, want %v", err, os.ErrDeadlineExceeded)
	}
}

// The deadline moves with the writes: frames spread over several write
// timeouts all go out to a peer that reads them.
func TestWriteDeadlineMovesWithTheWrites(t *testing.T) {
	const timeout = 100 * time.Millisecond
	rc, c := writer(t, wsconn.Options{WriteTimeout: timeout})
	for i := range 6 { // 6 x 80 ms: almost five timeouts
		msg := []byte{'a' + byte(i)}
		if err := c.WriteText(msg); err != nil {
			t.Fatalf("write %d, %v after the first: %v", i, time.Duration(i)*80*time.Millisecond, err)
		}
		if f := rc.readFrame(); f.op != opText || !bytes.Equal(f.payload, msg) {
			t.Fatalf("frame %d: op %#x payload %q, want a text frame %q", i, f.op, f.payload, msg)
		}
		time.Sleep(80 * time.Millisecond)
	}
}
