package sse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Errors.
var (
	ErrClosed = errors.New("sse: stream closed")
	ErrBusy   = errors.New("sse: too many requests waiting")
)

// inboxSize bounds the requests waiting for the connection's reader.
const inboxSize = 16

// Stream is one event stream and the requests posted for it.
type Stream struct {
	// Read-only after construction.
	w            http.ResponseWriter
	rc           *http.ResponseController
	req          context.Context // the GET's context: done when the peer leaves
	writeTimeout time.Duration
	inbox        chan []byte
	done         chan struct{}
	closeOnce    sync.Once

	// Guarded by wmu.
	wmu sync.Mutex
}

// Open starts the event stream on w: it sends the headers and returns the
// Stream. The caller serves the connection on the request's goroutine and
// returns from the handler once the connection ends.
func Open(w http.ResponseWriter, r *http.Request, writeTimeout time.Duration) (*Stream, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold events back
	w.WriteHeader(http.StatusOK)
	s := &Stream{
		w: w, rc: http.NewResponseController(w), req: r.Context(), writeTimeout: writeTimeout,
		inbox: make(chan []byte, inboxSize), done: make(chan struct{}),
	}
	if err := s.rc.Flush(); err != nil {
		return nil, err
	}
	return s, nil
}

// Deliver hands a posted request to the connection's reader without
// blocking.
func (s *Stream) Deliver(frame []byte) error {
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	select {
	case s.inbox <- frame:
		return nil
	default:
		return ErrBusy
	}
}

// ReadMessage returns the next posted request, waiting for it. A
// request is posted whole, so limit is the POST handler's to apply.
func (s *Stream) ReadMessage(int64) (bool, []byte, error) {
	select {
	case b := <-s.inbox:
		return true, b, nil
	case <-s.done:
		return false, nil, ErrClosed
	case <-s.req.Done():
		return false, nil, ErrClosed
	}
}

// Buffered is 0: requests wait in the inbox, and ReadMessage waits for
// them.
func (s *Stream) Buffered() int { return 0 }

// Park runs resume at once: the stream's reader waits in ReadMessage.
func (s *Stream) Park(resume func()) { go resume() }

// Drain returns at once: no close handshake follows the close event.
func (s *Stream) Drain() {}

// WriteText sends one frame as an event, a data line for each of its
// lines.
func (s *Stream) WriteText(p []byte) error {
	var b bytes.Buffer
	for line := range bytes.Lines(p) {
		b.WriteString("data: ")
		b.Write(bytes.TrimRight(line, "\r\n"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return s.send(b.Bytes())
}

// Ping writes a comment line: a peer that is gone makes it fail.
func (s *Stream) Ping(context.Context) error { return s.send([]byte(": ping\n\n")) }

// Close sends the close event and ends the stream.
func (s *Stream) Close(code uint16, reason string) error {
	b, _ := json.Marshal(struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}{int(code), reason})
	err := s.send(append(append([]byte("event: close\ndata: "), b...), '\n', '\n'))
	s.CloseNow()
	return err
}

// CloseNow ends the stream without a close event.
func (s *Stream) CloseNow() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}

// Done is closed when the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

func (s *Stream) send(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// Registry finds a replica's streams by connection id.
type Registry struct {
	mu      sync.Mutex
	streams map[string]entry // guarded by mu
}

type entry struct {
	stream *Stream
	user   func() string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{streams: make(map[string]entry)} }

// Add records a stream; user reports the connection's user once
// authenticated.
func (r *Registry) Add(id string, s *Stream, user func() string) {
	r.mu.Lock()
	r.streams[id] = entry{s, user}
	r.mu.Unlock()
}

// Remove forgets a stream.
func (r *Registry) Remove(id string) {
	r.mu.Lock()
	delete(r.streams, id)
	r.mu.Unlock()
}

// Get returns the stream of id and its user.
func (r *Registry) Get(id string) (*Stream, string, bool) {
	r.mu.Lock()
	e, ok := r.streams[id]
	r.mu.Unlock()
	if !ok {
		return nil, "", false
	}
	return e.stream, e.user(), true
}
