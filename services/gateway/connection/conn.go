package connection

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/hub"
	"switchboard/services/gateway/telemetry"
)

// Config holds the limits and timings of every connection. Each field says
// its default, applied by WithDefaults for a zero value.
type Config struct {
	MaxMessageBytes int64         // inbound frame limit; 64 KiB
	QueueBytes      int           // outgoing queue limit; 1 MiB
	WriteTimeout    time.Duration // one write; 10 s
	PingInterval    time.Duration // protocol ping period; 25 s
	PingTimeout     time.Duration // wait for its pong; 8 s
	AuthDeadline    time.Duration // time to authenticate; 10 s
	ExpiryGrace     time.Duration // after token expiry; 25 s
	RequestTimeout  time.Duration // one call to auth or the broker; 5 s
	Rate            float64       // frames per second; 50
	Burst           int           // frames at once; 100
	MaxRooms        int           // rooms per connection, user room included; 100
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = 1 << 20
	}
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.PingInterval, 25*time.Second)
	def(&c.PingTimeout, 8*time.Second)
	def(&c.AuthDeadline, 10*time.Second)
	def(&c.ExpiryGrace, 25*time.Second)
	def(&c.RequestTimeout, 5*time.Second)
	if c.Rate == 0 {
		c.Rate = 50
	}
	if c.Burst == 0 {
		c.Burst = 100
	}
	if c.MaxRooms == 0 {
		c.MaxRooms = 100
	}
	return c
}

// Authenticator is what a connection asks of auth.
type Authenticator interface {
	Validate(ctx context.Context, token string) (authn.Identity, error)
	Authorize(ctx context.Context, user, conversation string) (bool, error)
	Conversations(ctx context.Context, user string) ([]string, error)
}

// Deps are the parts a connection talks to.
type Deps struct {
	Hub     *hub.Hub
	Broker  broker.Broker
	Auth    Authenticator
	Metrics *telemetry.Metrics
	Logger  *slog.Logger
	// IDPrefix starts every connection id, so that ids name their replica.
	IDPrefix string
}

// Transport carries one connection's frames: a WebSocket
// (*wsconn.Conn) or the server-sent-event fallback.
type Transport interface {
	// ReadMessage returns the next message; wsconn.ErrNoMessage when only
	// control frames were buffered, wsconn.ErrTooBig past limit.
	ReadMessage(limit int64) (text bool, p []byte, err error)
	// Buffered counts bytes read and not yet turned into messages.
	Buffered() int
	// WriteText sends one message; a write outlasting the transport's
	// write timeout fails with os.ErrDeadlineExceeded.
	WriteText(p []byte) error
	// Park runs resume on a goroutine of its own once there is something
	// to read or the transport closed (at once, if it cannot wait
	// without a goroutine).
	Park(resume func())
	Ping(ctx context.Context) error
	// Drain reads and drops what the client sends until its close frame
	// or the end of the connection: the close handshake after the
	// server's close frame waits for it.
	Drain()
	Close(code uint16, reason string) error
	CloseNow() error
}

type item struct {
	frame     []byte
	published time.Time
}

var lastID atomic.Uint64

// Conn is one WebSocket.
type Conn struct {
	// Read-only after construction.
	id   string
	ws   Transport
	cfg  *Config
	deps *Deps
	done func() // runs once the connection has ended; set by Start

	// The reader's, between its bursts: the token from the upgrade
	// request until it is validated, whether it was, and the frames over
	// the rate limit in a row.
	token      string
	signedIn   bool
	violations int
	limiter    bucket
	// wg counts the flusher and a ping in flight; the end waits for them.
	wg sync.WaitGroup
	// pingTimer runs the protocol pings; deadline closes the connection
	// when it has not authenticated in time, and then when its token has
	// expired for longer than the grace. No goroutine waits on them; the
	// transport bounds each write itself.
	pingTimer *time.Timer
	deadline  *time.Timer

	// Safe on their own.
	cut    atomic.Bool // the connection was dropped without a close frame
	authed atomic.Bool // the connection has authenticated

	// Guarded by mu.
	mu    sync.Mutex
	ident authn.Identity
	rooms roomSet
	// joining names the room of the join in flight ("" when none; the
	// reader handles one request at a time), from before auth is asked
	// until the room is recorded in rooms; joinRevoked says that access
	// to it was revoked meanwhile, so the join must not stand.
	joining     string
	joinRevoked bool

	// Guarded by qmu.
	qmu       sync.Mutex
	queue     []item
	queued    int // bytes in queue
	inflight  int // bytes taken by the flusher and not yet written
	closing   bool
	closeCode protocol.CloseCode // 0: the peer went away, no close frame
	flushing  bool               // a flusher goroutine runs
}

// New wraps an accepted transport; Start or Serve runs it. cfg, with its
// defaults applied, and deps are shared by every connection and must not
// change.
func New(ws Transport, cfg *Config, deps *Deps) *Conn {
	c := &Conn{id: deps.IDPrefix + strconv.FormatUint(lastID.Add(1), 36), ws: ws, cfg: cfg, deps: deps}
	c.deadline = time.AfterFunc(time.Hour, c.checkDeadline)
	c.deadline.Stop()
	c.pingTimer = time.AfterFunc(time.Hour, c.ping)
	c.pingTimer.Stop()
	return c
}

// drop cuts the connection without a close frame: a write stuck on a peer
// that does not read returns at once.
func (c *Conn) drop() {
	c.cut.Store(true)
	c.ws.CloseNow()
}

// logger returns the connection's logger; built only when something is
// logged, which is rare, so an idle connection does not carry one.
func (c *Conn) logger() *slog.Logger {
	return c.deps.Logger.With("connection", c.id, "user", c.identity().User)
}

// ID names the connection in logs and in the fallback's URLs.
func (c *Conn) ID() string { return c.id }

// User returns the authenticated user, or "" before authentication.
func (c *Conn) User() string { return c.identity().User }

// Session returns the authenticated session, or "" before authentication.
func (c *Conn) Session() string { return c.identity().Session }

// Send queues frame without blocking. A frame that would take the queue
// past its byte limit closes the connection as a slow consumer instead.
func (c *Conn) Send(frame []byte, published time.Time) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	if c.queued+c.inflight+len(frame) > c.cfg.QueueBytes {
		c.closeLocked(protocol.CloseSlowConsumer)
		c.startFlushLocked()
		c.qmu.Unlock()
		// A write stuck on a peer that does not read is cut after a short
		// grace; a peer that reads slowly gets the close frame before it.
		time.AfterFunc(slowGrace, c.drop)
		return
	}
	c.queue = append(c.queue, item{frame, published})
	c.queued += len(frame)
	c.startFlushLocked()
	c.qmu.Unlock()
}

// startFlushLocked starts a flusher unless one runs. Caller must hold qmu.
func (c *Conn) startFlushLocked() {
	if c.flushing {
		return
	}
	c.flushing = true
	c.wg.Add(1)
	go c.flush()
}

// Close closes the connection with code, after the frames already queued
// unless it is a slow consumer. It does not block.
func (c *Conn) Close(code protocol.CloseCode) {
	c.qmu.Lock()
	c.closeLocked(code)
	c.startFlushLocked()
	c.qmu.Unlock()
}

// slowGrace bounds the wait for a write in flight to a slow consumer.
const slowGrace = 2 * time.Second

// closeLocked records the first close. Caller must hold qmu.
func (c *Conn) closeLocked(code protocol.CloseCode) {
	if c.closing {
		return
	}
	c.closing, c.closeCode = true, code
	if code != 0 {
		c.deps.Metrics.Closed(code)
	}
	if code == protocol.CloseSlowConsumer {
		c.queue, c.queued = nil, 0
	}
}

// AccessRevoked removes the connection from room and tells the client. A
// join of room in flight is marked, so that it does not stand: auth may
// have allowed it just before the revocation.
func (c *Conn) AccessRevoked(room string) {
	c.mu.Lock()
	ok := c.rooms.remove(room)
	if c.joining == room {
		c.joinRevoked = true
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	c.deps.Hub.Leave(room, c)
	c.push(protocol.Frame{Type: protocol.TypeLeft, Room: room, Reason: protocol.ReasonAccessRevoked})
}

// SessionRevoked closes the connection if it belongs to session.
func (c *Conn) SessionRevoked(session string) {
	c.mu.Lock()
	mine := c.ident.Session == session
	c.mu.Unlock()
	if mine {
		c.Close(protocol.CloseSessionRevoked)
	}
}

func (c *Conn) identity() authn.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ident
}

// Start runs the connection and returns at once; done runs once the
// connection has ended and left every room. token is the one the upgrade
// request carried, or "" for a first auth frame. The reader runs in
// bursts, on a goroutine that lives while there is something to read,
// and a flusher while there is something to write; in between, the
// transport holds the connection parked. The server drains with Close.
func (c *Conn) Start(token string, done func()) {
	c.deps.Metrics.Connections.Inc()
	c.token, c.done = token, done
	c.deadline.Reset(c.cfg.AuthDeadline)
	c.pingTimer.Reset(c.cfg.PingInterval)
	go c.burst()
}

// Serve runs the connection until it has ended, for a transport whose
// HTTP response lives as long as the connection.
func (c *Conn) Serve(token string) {
	ended := make(chan struct{})
	c.Start(token, func() { close(ended) })
	<-ended
}

// checkDeadline closes the connection if it has not authenticated in
// time, or if its token expired more than the grace ago; a refresh may
// have moved the expiry since the timer was set.
func (c *Conn) checkDeadline() {
	switch {
	case !c.authed.Load():
		c.Close(protocol.CloseAuthTimeout)
	case time.Now().Before(c.identity().Expires.Add(c.cfg.ExpiryGrace)):
		c.armExpiry()
	default:
		c.Close(protocol.CloseTokenExpired)
	}
}

// end finishes the connection once its reader has ended with code: it
// closes, lets the flusher send what is queued and the close frame,
// leaves every room and runs done.
func (c *Conn) end(code protocol.CloseCode) {
	c.Close(code)
	if code != 0 {
		// The server ends the connection: the client's close frame is
		// still to come, and the close handshake waits for it.
		c.ws.Drain()
	}
	c.wg.Wait()
	c.pingTimer.Stop()
	c.deadline.Stop()
	c.cleanup()
	c.deps.Metrics.Connections.Dec()
	c.done()
}

// addRoom records room as joined, unless the connection has already left
// everything on its way out; then it leaves room in the hub again.
func (c *Conn) addRoom(room string) bool {
	c.mu.Lock()
	ok := c.rooms.add(room)
	c.mu.Unlock()
	if !ok {
		c.deps.Hub.Leave(room, c)
	}
	return ok
}

// startJoin records room as the join in flight, before auth is asked.
func (c *Conn) startJoin(room string) {
	c.mu.Lock()
	c.joining, c.joinRevoked = room, false
	c.mu.Unlock()
}

// endJoin forgets the join in flight, if still recorded.
func (c *Conn) endJoin() {
	c.mu.Lock()
	c.joining, c.joinRevoked = "", false
	c.mu.Unlock()
}

// joinRevokedYet reports whether access to the room of the join in flight
// was revoked since startJoin.
func (c *Conn) joinRevokedYet() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joinRevoked
}

// Outcomes of finishJoin.
const (
	joinAdded   = iota // room recorded as joined
	joinRefused        // access was revoked while the join was in flight
	joinClosing        // the connection has left everything on its way out
)

// finishJoin ends the join in flight of room, whose hub join has
// succeeded: in the same step as checking that access was not revoked
// meanwhile, it records room as joined, so a later revocation finds the
// membership. Unless it returns joinAdded, room is left in the hub again.
func (c *Conn) finishJoin(room string) int {
	c.mu.Lock()
	out := joinAdded
	switch {
	case c.rooms.left:
		out = joinClosing
	case c.joining == room && c.joinRevoked:
		out = joinRefused
	default:
		c.rooms.add(room)
	}
	c.joining, c.joinRevoked = "", false
	c.mu.Unlock()
	if out != joinAdded {
		c.deps.Hub.Leave(room, c)
	}
	return out
}

// cleanup leaves every room and forgets the user. It runs when the flusher
// starts closing and again when the connection ends.
func (c *Conn) cleanup() {
	c.mu.Lock()
	rooms := c.rooms.leaveAll()
	user := c.ident.User
	c.mu.Unlock()
	for _, room := range rooms {
		c.deps.Hub.Leave(room, c)
	}
	if user != "" {
		c.deps.Hub.Unregister(user, c)
	}
}
