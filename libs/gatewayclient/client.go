package gatewayclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/libs/gatewayclient/protocol"
)

// TokenSource hands out a current access token.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// Message is a message pushed to one of the client's rooms.
type Message struct {
	Room     string
	Data     json.RawMessage
	Position protocol.Position
}

// State is where the client is in its life.
type State int

// The states.
const (
	StateConnecting State = iota + 1
	// StateConnected is reported once per connection, when the client's
	// rooms have been joined again, with their Recovery.
	StateConnected
	StateDisconnected
	StateClosed // Run returned
)

func (s State) String() string {
	return [...]string{"", "connecting", "connected", "disconnected", "closed"}[s]
}

// Event tells a handler what changed.
type Event struct {
	// State is the state entered; zero when the event reports something
	// else (a room left, a refresh, the recovery after a resync push, a
	// quality change).
	State State
	// CloseCode is the server's close code when disconnected (0: none).
	CloseCode int
	// Err is why the connection ended or an attempt failed.
	Err error
	// Retry is how long the client waits before the next attempt.
	Retry time.Duration
	// Left is a room the server removed the client from, with Reason.
	Left, Reason string
	// Refreshed is set when the token was refreshed in-band.
	Refreshed bool
	// QualityChanged is set when the connection quality Latency reports
	// changed, to Quality; RTT is the round trip that graded it (for a
	// ping that got no answer, how long it waited; 0 for unknown). It is
	// reported once per change, never for a ping that keeps the grade.
	QualityChanged bool
	Quality        Quality
	RTT            time.Duration
	// Recovery names the rooms that had a position and were joined again:
	// on the StateConnected event of a reconnect, and on an event without
	// State after a resync push. For each, true when every message after
	// the position was delivered; false when the gateway answered that it
	// is not recoverable, or the rejoin did not complete (the connection
	// ended first: the next connection reports the room again), in which
	// case messages may have been missed. A room the gateway refused is
	// reported by Left instead.
	Recovery map[string]bool
}

// Quality grades the connection by the application ping: by the round
// trip of its latest ping while pings are answered, poor while the latest
// got no answer within RequestTimeout, and unknown while disconnected and
// until the first ping of a connection is answered. An error reply (a ping
// rate-limited, say) is an answer: it is graded by its round trip like any
// other. A connection keeps the poor grade while its pings go unanswered;
// it is unknown once it ends.
type Quality int

// The grades.
const (
	QualityUnknown   Quality = iota // not connected, or no ping answered yet
	QualityExcellent                // under 100 ms
	QualityGood                     // under 300 ms
	QualityPoor                     // 300 ms or more, or no answer
)

func (q Quality) String() string {
	return [...]string{"unknown", "excellent", "good", "poor"}[q]
}

// Grade returns the quality of a round trip of d.
func Grade(d time.Duration) Quality {
	switch {
	case d < 100*time.Millisecond:
		return QualityExcellent
	case d < 300*time.Millisecond:
		return QualityGood
	}
	return QualityPoor
}

// Options configure New. Zero fields take the default they name.
type Options struct {
	URL string // ws://host:port/ws; required unless URLs is set
	// URLs, if set, replaces URL: each attempt after a lost connection or
	// a failed dial goes to the next, round robin.
	URLs   []string
	Tokens TokenSource // required
	Header http.Header // extra handshake headers (Origin); optional

	OnMessage func(Message)
	OnEvent   func(Event)

	MinBackoff     time.Duration // first reconnect delay cap; 500 ms
	MaxBackoff     time.Duration // largest reconnect delay cap; 20 s
	PingInterval   time.Duration // application ping period; 10 s
	RefreshMargin  time.Duration // refresh this long before expiry; 30 s
	RequestTimeout time.Duration // one request; 10 s
}

// Errors.
var (
	ErrNotConnected = errors.New("gatewayclient: not connected")
	ErrClosed       = errors.New("gatewayclient: closed")
)

// CloseError ends Run when the server closed with a code that says not to
// reconnect.
type CloseError struct{ Code int }

func (e *CloseError) Error() string {
	return fmt.Sprintf("gatewayclient: closed by the server with %d (%s); not reconnecting",
		e.Code, protocol.CloseCode(e.Code).Reason())
}

// ServerError is an error reply from the gateway.
type ServerError = protocol.Error

// Client keeps a connection to the gateway.
type Client struct {
	// Read-only after construction.
	opts Options
	ids  atomic.Uint64

	// Held while OnMessage or OnEvent runs, so that they run one at a
	// time, and while the quality changes, so that its events arrive in
	// the order of the changes. Taken with no other lock held; mu may be
	// taken under it.
	handlers sync.Mutex

	// Guarded by mu.
	mu      sync.Mutex
	rooms   map[string]bool              // rooms to be in, across reconnects
	last    map[string]protocol.Position // last position seen per room
	gaps    map[string]*gap              // resync gaps awaiting a rejoin
	sess    *session                     // nil while disconnected
	state   State
	expires time.Time
	quality Quality
	rtt     time.Duration // of the ping that graded quality
}

// New returns a client; Run connects it.
func New(opts Options) *Client {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.MinBackoff, 500*time.Millisecond)
	def(&opts.MaxBackoff, 20*time.Second)
	def(&opts.PingInterval, 10*time.Second)
	def(&opts.RefreshMargin, 30*time.Second)
	def(&opts.RequestTimeout, 10*time.Second)
	return &Client{
		opts: opts, rooms: make(map[string]bool),
		last: make(map[string]protocol.Position), gaps: make(map[string]*gap),
	}
}

// State returns the current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Position returns the position of the last message seen in room. The
// client names it when it joins the room again after a reconnect, so that
// a gateway serving room history can send what was missed.
func (c *Client) Position(room string) (protocol.Position, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.last[room]
	return p, ok
}

// Latency returns the connection's quality and the round trip that graded
// it: the latest answered ping's, or, when the latest ping got no answer
// (QualityPoor), how long it waited. It is 0 and QualityUnknown while
// disconnected and before the first answer. OnEvent hears of every change
// (Event.QualityChanged), so Latency need not be polled.
func (c *Client) Latency() (time.Duration, Quality) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rtt, c.quality
}

// grade records the outcome of a ping sent on s after waiting rtt:
// answered, or not (no reply within the timeout). A ping whose connection
// is no longer the current one grades nothing.
func (c *Client) grade(s *session, rtt time.Duration, answered bool) {
	q := QualityPoor
	if answered {
		q = Grade(rtt)
	}
	c.setQuality(s, q, max(rtt, 1))
}

// setQuality records q and rtt, and reports q to OnEvent when it changed.
// With s set, only while s is the current connection.
func (c *Client) setQuality(s *session, q Quality, rtt time.Duration) {
	c.handlers.Lock()
	defer c.handlers.Unlock()
	c.mu.Lock()
	if s != nil && c.sess != s {
		c.mu.Unlock()
		return
	}
	changed := c.quality != q
	c.quality, c.rtt = q, rtt
	c.mu.Unlock()
	if changed && c.opts.OnEvent != nil {
		c.opts.OnEvent(Event{QualityChanged: true, Quality: q, RTT: rtt})
	}
}

// Backoff returns the delay before reconnect attempt n (0-based): a random
// duration up to min(max, min·2ⁿ), "full jitter".
func Backoff(n int, lo, hi time.Duration) time.Duration {
	ceiling := hi
	if n < 32 && lo<<n < hi && lo<<n > 0 {
		ceiling = lo << n
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// url returns the URL of attempt n.
func (c *Client) url(n int) string {
	if len(c.opts.URLs) == 0 {
		return c.opts.URL
	}
	return c.opts.URLs[n%len(c.opts.URLs)]
}

func (c *Client) emit(e Event) {
	if e.State != 0 {
		c.mu.Lock()
		c.state = e.State
		c.mu.Unlock()
	}
	if c.opts.OnEvent != nil {
		c.handlers.Lock()
		defer c.handlers.Unlock()
		c.opts.OnEvent(e)
	}
}

// Run connects and keeps the client connected until ctx ends or the server
// closes with a "do not reconnect" code; it returns why it stopped.
func (c *Client) Run(ctx context.Context) error {
	defer c.emit(Event{State: StateClosed})
	attempt, sessions := 0, 0
	var rejected string // a token the server refused as bad
	for {
		c.emit(Event{State: StateConnecting})
		tok, err := c.opts.Tokens.Token(ctx)
		if err == nil && tok == rejected {
			return fmt.Errorf("gatewayclient: the token source returned a refused token again")
		}
		var code int
		if err == nil {
			var connected bool
			code, connected, err = c.session(ctx, c.url(sessions), tok)
			sessions++
			if connected {
				attempt = 0
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if code != 0 && !protocol.Reconnect(code) {
			if code != int(protocol.CloseBadToken) {
				c.emit(Event{State: StateDisconnected, CloseCode: code, Err: err})
				return &CloseError{Code: code}
			}
			rejected = tok // a fresh token may fix it; the same one never will
		}
		wait := Backoff(attempt, c.opts.MinBackoff, c.opts.MaxBackoff)
		attempt++
		c.emit(Event{State: StateDisconnected, CloseCode: code, Err: err, Retry: wait})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
