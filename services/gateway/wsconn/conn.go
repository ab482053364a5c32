package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds on control frames, which ReadMessage answers itself.
const (
	maxControlRun        = 16
	maxControlsInMessage = 1024
)

// closeWait bounds how long Close waits for the client's close frame.
const closeWait = 5 * time.Second

// readBufferBytes sizes the buffer a burst of reading takes from the pool;
// a frame longer than what it holds is read straight into its message.
const readBufferBytes = 4 << 10

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferBytes); return &b }}

// Conn is one WebSocket after its handshake.
type Conn struct {
	nc           net.Conn
	poller       *Poller
	fd           int    // the socket's descriptor; -1 when it cannot be parked
	id           uint64 // the registration in the poller; 0 before the first Park
	deflate      bool   // permessage-deflate was negotiated
	threshold    int    // shortest message sent compressed
	writeTimeout time.Duration

	// Reader only: the buffer of the current burst (nil while parked),
	// and the unread bytes in it; the payload left unread by ErrTooBig;
	// whether a protocol error left the stream unparseable.
	rbuf       *[]byte
	rpos, rend int
	skip       int64
	broken     bool

	// Writers: wmu serialises frames on the socket; writeDeadline is the
	// socket's write deadline as last set.
	wmu           sync.Mutex
	closeSent     bool
	writeDeadline time.Time

	// Guarded by mu.
	mu       sync.Mutex
	closed   bool          // CloseNow ran
	resume   func()        // set while parked
	pong     chan struct{} // the Ping waiting for its pong
	peerDone chan struct{} // closed when the reader has seen the end; made by Close
	readEnd  bool          // the reader has seen a close frame or an error
}

func newConn(nc net.Conn, o Options, deflate bool) *Conn {
	c := &Conn{
		nc: nc, poller: o.Poller, fd: -1, deflate: deflate,
		threshold: o.CompressionThreshold, writeTimeout: o.WriteTimeout,
	}
	if c.poller != nil {
		c.fd = socketFD(nc)
	}
	return c
}

// Buffered returns how many bytes the reader holds that it has not
// turned into messages yet. The caller parks only when it is 0.
func (c *Conn) Buffered() int { return c.rend - c.rpos }

// ReadMessage reads the next text or binary message, reassembling its
// fragments and inflating it when compressed, and answers the control
// frames before and among them. A message longer than limit bytes (before
// or after inflating) returns ErrTooBig. The client's close frame returns
// a *CloseError after the answer was sent; a violation a ProtocolError.
// Control frames that leave nothing buffered return ErrNoMessage, so that
// a pong does not keep a goroutine waiting for the next message; so does a
// run of maxControlRun of them, so that the caller's rate limit sees a
// flood of pings. A message interrupted by more than maxControlsInMessage
// control frames is a ProtocolError.
func (c *Conn) ReadMessage(limit int64) (text bool, p []byte, err error) {
	p, text, err = c.readMessage(limit)
	var perr ProtocolError
	switch {
	case err == nil, err == ErrNoMessage, err == ErrTooBig:
	case errors.As(err, &perr):
		c.broken = true
	default: // the client's close frame, or the end of the stream
		c.endRead()
		c.releaseBuffer()
	}
	return text, p, err
}

func (c *Conn) readMessage(limit int64) ([]byte, bool, error) {
	var (
		msg        []byte
		started    bool
		text, comp bool
		controls   int
	)
	for {
		h, err := c.readHeader()
		if err != nil {
			return nil, false, err
		}
		if h.op >= opClose {
			if err := c.control(h); err != nil {
				return nil, false, err
			}
			controls++
			switch {
			case !started && (c.Buffered() == 0 || controls == maxControlRun):
				return nil, false, ErrNoMessage
			case started && controls > maxControlsInMessage:
				return nil, false, ProtocolError("too many control frames inside one message")
			}
			continue
		}
		switch {
		case h.op == opContinuation && !started:
			return nil, false, ProtocolError("continuation frame without a message")
		case h.op != opContinuation && started:
			return nil, false, ProtocolError("new message inside a fragmented one")
		case h.op == opContinuation && h.rsv1:
			return nil, false, ProtocolError("compression bit on a continuation frame")
		case h.rsv1 && !c.deflate:
			return nil, false, ProtocolError("compressed frame without permessage-deflate")
		}
		if !started {
			started, text, comp = true, h.op == opText, h.rsv1
		}
		if h.length > limit-int64(len(msg)) { // no overflow: len(msg) <= limit
			c.skip = h.length
			return nil, false, ErrTooBig
		}
		msg, err = c.readPayload(msg, h)
		if err != nil {
			return nil, false, err
		}
		if h.fin {
			break
		}
	}
	if comp {
		var err error
		if msg, err = inflate(msg, limit); err != nil {
			return nil, false, err
		}
	}
	return msg, text, nil
}

// control answers a control frame.
func (c *Conn) control(h header) error {
	p, err := c.readPayload(nil, h)
	if err != nil {
		return err
	}
	switch h.op {
	case opPing:
		return c.writeFrame(opPong, false, p)
	case opPong:
		c.mu.Lock()
		if c.pong != nil {
			close(c.pong)
			c.pong = nil
		}
		c.mu.Unlock()
		return nil
	}
	ce, err := parseClose(p)
	if err != nil {
		return err
	}
	code := ce.Code
	if code == noStatus {
		code = 1000
	}
	c.writeClose(code, "")
	return ce
}

// readHeader reads the next frame header.
func (c *Conn) readHeader() (header, error) {
	for {
		h, n, err := parseHeader(c.unread())
		if err != nil {
			return h, err
		}
		if n > 0 {
			c.rpos += n
			return h, nil
		}
		if err := c.fill(); err != nil {
			return h, err
		}
	}
}

// readPayload appends the frame's unmasked payload to msg.
func (c *Conn) readPayload(msg []byte, h header) ([]byte, error) {
	start := len(msg)
	msg = grow(msg, int(h.length))
	for have := 0; int64(have) < h.length; {
		if c.Buffered() == 0 {
			if rest := int(h.length) - have; rest >= readBufferBytes {
				// Long: straight into the message, past the buffer.
				n, err := io.ReadFull(c.nc, msg[start+have:start+have+rest])
				if err != nil {
					return nil, c.readError(err)
				}
				have += n
				continue
			}
			if err := c.fill(); err != nil {
				return nil, err
			}
		}
		n := copy(msg[start+have:start+int(h.length)], c.unread())
		c.rpos += n
		have += n
	}
	unmask(msg[start:], h.mask, 0)
	return msg, nil
}

// grow extends b by n bytes.
func grow(b []byte, n int) []byte {
	if n <= cap(b)-len(b) {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n)
	copy(nb, b)
	return nb
}

func (c *Conn) unread() []byte {
	if c.rbuf == nil {
		return nil
	}
	return (*c.rbuf)[c.rpos:c.rend]
}

// fill reads more bytes from the socket, taking a buffer from the pool
// when the reader holds none. The bytes not read yet move to its front.
func (c *Conn) fill() error {
	if c.rbuf == nil {
		c.rbuf = readBuffers.Get().(*[]byte)
		c.rpos, c.rend = 0, 0
	}
	b := *c.rbuf
	if c.rpos > 0 {
		c.rend = copy(b, b[c.rpos:c.rend])
		c.rpos = 0
	}
	n, err := c.nc.Read(b[c.rend:])
	c.rend += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return c.readError(err)
}

// readError is ErrClosed for a read that failed because CloseNow closed
// the socket, and err otherwise.
func (c *Conn) readError(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return err
}

// releaseBuffer gives the read buffer back once it holds nothing unread.
func (c *Conn) releaseBuffer() {
	if c.rbuf != nil && c.Buffered() == 0 {
		readBuffers.Put(c.rbuf)
		c.rbuf, c.rpos, c.rend = nil, 0, 0
	}
}

// setEarly hands the reader the bytes the HTTP server read past the
// handshake.
func (c *Conn) setEarly(b []byte) {
	if len(b) == 0 {
		return
	}
	buf := make([]byte, max(len(b), readBufferBytes))
	c.rbuf, c.rpos, c.rend = &buf, 0, copy(buf, b)
}

// Drain reads and drops frames after the caller stopped reading
// messages, until the client's close frame or the end of the stream,
// bounded by Close's wait: the client's answer to the server's close
// frame is read, and closing the socket does not reset the connection
// on unread bytes, which could lose the close frame on its way to the
// client. After a protocol error bytes are dropped unparsed.
func (c *Conn) Drain() {
	defer c.releaseBuffer()
	defer c.endRead()
	for !c.broken {
		if c.skip > 0 {
			if c.discard(c.skip) != nil {
				return
			}
			c.skip = 0
		}
		h, err := c.readHeader()
		if errors.As(err, new(ProtocolError)) {
			c.broken = true
			break
		}
		if err != nil || h.op == opClose {
			return
		}
		c.skip = h.length
	}
	for c.fill() == nil {
		c.rpos = c.rend
	}
}

// discard drops n bytes of the stream.
func (c *Conn) discard(n int64) error {
	for n > 0 {
		if c.Buffered() == 0 {
			if err := c.fill(); err != nil {
				return err
			}
		}
		k := min(n, int64(c.Buffered()))
		c.rpos += int(k)
		n -= k
	}
	return nil
}

// endRead records that the reader will read no more, for Close.
func (c *Conn) endRead() {
	c.mu.Lock()
	c.readEnd = true
	if c.peerDone != nil {
		close(c.peerDone)
		c.peerDone = nil
	}
	c.mu.Unlock()
}

// Park waits, without a goroutine, until the client sends something, hangs
// up, or the connection is closed here; then it runs resume on a goroutine
// of its own. The caller calls it only when Buffered is 0, from the
// reading goroutine, which should end soon after. Without a poller (or on
// a connection that is not a socket) resume runs at once and its reads
// block.
func (c *Conn) Park(resume func()) {
	c.releaseBuffer()
	c.mu.Lock()
	if c.closed || c.fd < 0 {
		c.mu.Unlock()
		go resume()
		return
	}
	c.resume = resume
	err := c.poller.arm(c)
	c.mu.Unlock()
	if err != nil {
		c.wake()
	}
}

// wake runs the parked reader, once.
func (c *Conn) wake() {
	c.mu.Lock()
	resume := c.resume
	c.resume = nil
	c.mu.Unlock()
	if resume != nil {
		go resume()
	}
}

// WriteText sends p as one text message, compressed when negotiated and
// p is at least the threshold long.
func (c *Conn) WriteText(p []byte) error {
	if c.deflate && len(p) >= c.threshold {
		z := getCompressor()
		err := c.writeFrame(opText, true, z.compress(p))
		putCompressor(z)
		return err
	}
	return c.writeFrame(opText, false, p)
}

// writeFrame sends one frame in one write.
func (c *Conn) writeFrame(op byte, rsv1 bool, p []byte) error {
	bp := frameBuffers.Get().(*[]byte)
	b := append(appendHeader((*bp)[:0], op, rsv1, len(p)), p...)
	c.wmu.Lock()
	var err error
	if c.closeSent {
		err = ErrClosed
	} else {
		c.closeSent = op == opClose
		c.extendWriteDeadline()
		_, err = c.nc.Write(b)
	}
	c.wmu.Unlock()
	if cap(b) <= maxPooledFrame {
		*bp = b
		frameBuffers.Put(bp)
	}
	return err
}

// extendWriteDeadline moves the socket's write deadline to a write
// timeout from now once less than half of it is left, so that a write
// fails after between half the timeout and the whole of it. Setting the
// deadline for every frame cost a timer update per delivery, about 3% of
// a replica's CPU when fanning out. Caller must hold wmu.
func (c *Conn) extendWriteDeadline() {
	if c.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if c.writeDeadline.Sub(now) >= c.writeTimeout/2 {
		return
	}
	c.writeDeadline = now.Add(c.writeTimeout)
	c.nc.SetWriteDeadline(c.writeDeadline)
}

// Frame buffers join a header and its payload for one write system call.
const maxPooledFrame = 16 << 10

var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Ping sends a ping and waits for a pong, up to ctx. Pings at the same
// time wait for the same next pong.
func (c *Conn) Ping(ctx context.Context) error {
	c.mu.Lock()
	if c.pong == nil {
		c.pong = make(chan struct{})
	}
	ch := c.pong
	c.mu.Unlock()
	if err := c.writeFrame(opPing, false, nil); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		if c.pong == ch {
			c.pong = nil
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

// writeClose sends a close frame unless one was sent.
func (c *Conn) writeClose(code uint16, reason string) error {
	return c.writeFrame(opClose, false, closePayload(code, reason))
}

// Close sends a close frame with code and reason, waits up to 5 s for the
// reader to see the client's answer (or the end of the connection), and
// closes the socket. A code an endpoint may not send, or a reason that is
// not UTF-8, closes the socket without a frame and returns an error.
func (c *Conn) Close(code uint16, reason string) error {
	if !validCloseCode(code) || !utf8.ValidString(reason) {
		return errors.Join(fmt.Errorf("wsconn: close code %d or its reason may not be sent", code), c.CloseNow())
	}
	if err := c.writeClose(code, reason); err != nil {
		return errors.Join(err, c.CloseNow())
	}
	c.mu.Lock()
	var done chan struct{}
	if !c.readEnd && !c.closed {
		if c.peerDone == nil {
			c.peerDone = make(chan struct{})
		}
		done = c.peerDone
	}
	c.mu.Unlock()
	if done != nil {
		t := time.NewTimer(closeWait)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	return c.CloseNow()
}

// CloseNow closes the socket without a close frame. A parked reader
// resumes and finds the connection closed.
func (c *Conn) CloseNow() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.id != 0 {
		c.poller.remove(c)
	}
	err := c.nc.Close()
	c.mu.Unlock()
	c.wake()
	return err
}

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }
