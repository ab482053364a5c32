package broker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterOptions configure NewCluster.
type ClusterOptions struct {
	// Client publishes and owns the sharded pub/sub connections. Required.
	// Set its ContextTimeoutEnabled so that a stalled node fails publishes
	// in time.
	Client *redis.ClusterClient
	// Prefix starts every channel and key. Empty: "sb:".
	Prefix string
	// History bounds each room's history and the idempotency window.
	History HistoryOptions
	// BatchMax caps the channels of one SSUBSCRIBE or SUNSUBSCRIBE. Zero:
	// 512.
	BatchMax int
	// Logger receives connection errors. Nil: discarded.
	Logger *slog.Logger
	// OnError, if set, is called for every Redis error the broker meets.
	OnError func()
	// OnForward receives payloads forwarded to this replica. Nil: dropped.
	OnForward ForwardHandler
	// OnResubscribed, if set, is called for each room whose subscription
	// was confirmed again after its connection was lost or its slot moved:
	// messages published meanwhile did not arrive. It must not block.
	OnResubscribed func(room string)
}

// Cluster is the broker over Redis Cluster sharded pub/sub (SSUBSCRIBE,
// SPUBLISH; Redis 7). A room's channel lives in the hash slot of its
// {room} tag, on the node that owns the slot, beside the room's history.
//
// Each shard is one pub/sub connection carrying the channels of one hash
// slot: go-redis sends every channel of a connection in one SSUBSCRIBE when
// it reconnects, and Redis refuses channels of different slots in one
// SSUBSCRIBE. A replica therefore holds one connection per slot its
// wanted rooms use (up to 16,384), opened with the slot's first room and
// closed with its last.
//
// A shard whose connection breaks reconnects to the slot's owner once the
// cluster client has reloaded its slot map; a shard whose node answers
// MOVED, or unsubscribes it on its own because the slot moved, is closed
// and opened again. Either way its rooms are reported to OnResubscribed
// once subscribed again.
type Cluster struct {
	// Read-only after construction.
	opts    ClusterOptions
	handler Handler
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// Its subscriptions are safe on their own; Cluster.mu is never held
	// while calling them.
	commands

	// Guarded by mu.
	mu     sync.Mutex
	shards map[int]*shard // by hash slot
	closed bool
}

// shard is the sharded pub/sub connection of one hash slot.
type shard struct {
	// Read-only after construction.
	slot int
	ps   *redis.PubSub

	// Safe on its own.
	closed atomic.Bool

	// Guarded by Cluster.mu.
	rooms map[string]bool // rooms sent on this connection
}

// NewCluster starts a broker delivering to h; Close stops it.
func NewCluster(opts ClusterOptions, h Handler) *Cluster {
	if opts.Prefix == "" {
		opts.Prefix = "sb:"
	}
	opts.History = opts.History.WithDefaults()
	if opts.BatchMax == 0 {
		opts.BatchMax = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cluster{
		opts: opts, handler: h, ctx: ctx, cancel: cancel,
		shards: make(map[int]*shard),
	}
	// The publish script publishes with SPUBLISH on the node owning the
	// room's slot; a failed command reloads the slot map.
	c.commands = commands{
		history: RedisHistory{
			Client: opts.Client, Prefix: opts.Prefix, Opts: opts.History,
			PublishCommand: "SPUBLISH", pipeline: newPublishPipeline(opts.Client),
		},
		prefix: opts.Prefix,
		send: func(ctx context.Context, channel string, payload []byte) (int64, error) {
			return opts.Client.SPublish(ctx, channel, payload).Result()
		},
		failed: c.commandFailed,
		via:    "redis cluster",
		subs:   newSubscriptions(),
	}
	c.wg.Add(1)
	go c.batch(ctx)
	return c
}

func (c *Cluster) channel(room string) string { return KeysOf(c.opts.Prefix, room).Channel }

// Close stops every goroutine and closes every pub/sub connection.
func (c *Cluster) Close() error {
	c.subs.close()
	c.mu.Lock()
	c.closed = true
	shards := c.shards
	c.shards = map[int]*shard{}
	c.mu.Unlock()
	c.cancel()
	var err error
	for _, s := range shards {
		err = errors.Join(err, s.close())
	}
	c.wg.Wait()
	return err
}

func (s *shard) close() error {
	s.closed.Store(true)
	return s.ps.Close()
}

// commandFailed counts a failed command and has the cluster client reload
// its slot map: after a failover the client would otherwise keep sending
// the slot's commands to the dead master until its map ages out.
func (c *Cluster) commandFailed() {
	c.failed()
	c.opts.Client.ReloadState(c.ctx)
}

func (c *Cluster) failed() {
	if c.opts.OnError != nil {
		c.opts.OnError()
	}
}

// batch turns changes of want into SSUBSCRIBE and SUNSUBSCRIBE commands,
// one slot per command, as many channels per command as BatchMax allows.
func (c *Cluster) batch(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.subs.dirty:
		}
		sub, unsub := c.subs.diff()
		for slot, rooms := range c.bySlot(sub) {
			c.subscribe(ctx, slot, rooms)
		}
		for slot, rooms := range c.bySlot(unsub) {
			c.unsubscribe(ctx, slot, rooms)
		}
	}
}

func (c *Cluster) bySlot(rooms []string) map[int][]string {
	m := make(map[int][]string)
	for _, room := range rooms {
		slot := Slot(c.channel(room))
		m[slot] = append(m[slot], room)
	}
	return m
}

// subscribe sends rooms, all of slot, on the slot's shard, opening it
// first if needed.
func (c *Cluster) subscribe(ctx context.Context, slot int, rooms []string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	s, ok := c.shards[slot]
	if !ok {
		s = &shard{slot: slot, ps: c.opts.Client.SSubscribe(ctx), rooms: make(map[string]bool)}
		c.shards[slot] = s
	}
	for _, room := range rooms {
		s.rooms[room] = true
	}
	c.mu.Unlock()

	// The first SSUBSCRIBE dials the slot's owner; the receive goroutine
	// starts after it so that its first read does not dial a random node.
	c.send(ctx, c.channels(rooms), s.ps.SSubscribe)
	if !ok {
		c.wg.Add(1)
		go c.receive(s)
	}
}

// unsubscribe sends SUNSUBSCRIBE for rooms, all of slot, and closes the
// slot's shard when no room is left on it.
func (c *Cluster) unsubscribe(ctx context.Context, slot int, rooms []string) {
	c.mu.Lock()
	s, ok := c.shards[slot]
	if !ok { // reopening: nothing is subscribed
		c.mu.Unlock()
		for _, room := range rooms {
			c.subs.unconfirm(room)
		}
		return
	}
	for _, room := range rooms {
		delete(s.rooms, room)
	}
	empty := len(s.rooms) == 0
	if empty {
		delete(c.shards, slot)
	}
	c.mu.Unlock()

	if !empty {
		c.send(ctx, c.channels(rooms), s.ps.SUnsubscribe)
		return
	}
	s.close() // closing the connection unsubscribes everything on it
	for _, room := range rooms {
		c.subs.unconfirm(room)
	}
}

func (c *Cluster) channels(rooms []string) []string {
	chans := make([]string, len(rooms))
	for i, room := range rooms {
		chans[i] = c.channel(room)
	}
	return chans
}

// send issues cmd over channels in chunks. A failed write is not retried
// here: go-redis sends every channel of the shard again when it reconnects.
func (c *Cluster) send(ctx context.Context, channels []string, cmd func(context.Context, ...string) error) {
	for len(channels) > 0 {
		n := min(len(channels), c.opts.BatchMax)
		if err := cmd(ctx, channels[:n]...); err != nil && ctx.Err() == nil {
			c.failed()
			c.opts.Logger.Warn("redis cluster pub/sub command failed", "error", err)
		}
		channels = channels[n:]
	}
}

// receive reads one shard's connection until the shard closes.
// Acknowledgements update the subscriptions, messages go to the handler.
// A broken connection is reconnected by go-redis on the next read, to the
// slot's owner as the cluster client then knows it, which resubscribes
// every channel of the shard.
func (c *Cluster) receive(s *shard) {
	defer c.wg.Done()
	for {
		v, err := s.ps.ReceiveTimeout(c.ctx, 15*time.Second)
		if s.closed.Load() || c.ctx.Err() != nil {
			return
		}
		if err != nil {
			c.receiveFailed(s, err)
			continue
		}
		switch m := v.(type) {
		case *redis.Subscription:
			c.acknowledged(s, m)
		case *redis.Message:
			if room, ok := roomOf(c.opts.Prefix, m.Channel); ok {
				dispatch(room, m.Payload, c.handler, c.opts.OnForward, c.opts.Logger)
			}
		}
	}
}

// receiveFailed handles a failed read of s. A reply error (MOVED,
// CLUSTERDOWN: the connection went to a node that no longer owns the slot)
// reopens the shard. Otherwise the connection broke: its rooms are lost,
// the cluster client reloads the slot map (the slot may have a new owner)
// and the next read reconnects after a short wait.
func (c *Cluster) receiveFailed(s *shard, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if err := s.ps.Ping(c.ctx); err == nil {
			return
		}
	}
	c.failed()
	c.opts.Logger.Warn("redis cluster pub/sub connection lost", "slot", s.slot, "error", err)
	var re redis.Error
	if errors.As(err, &re) {
		c.reopen(s)
		return
	}
	c.subs.lose(c.roomsOf(s))
	c.opts.Client.ReloadState(c.ctx)
	c.pause()
}

// pause waits up to half a second, at random, so that replicas do not
// reconnect in step.
func (c *Cluster) pause() {
	wait := time.Duration(rand.Int64N(int64(500 * time.Millisecond)))
	select {
	case <-c.ctx.Done():
	case <-time.After(wait):
	}
}

func (c *Cluster) roomsOf(s *shard) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := make(map[string]bool, len(s.rooms))
	for room := range s.rooms {
		rooms[room] = true
	}
	return rooms
}

func (c *Cluster) acknowledged(s *shard, m *redis.Subscription) {
	room, ok := roomOf(c.opts.Prefix, m.Channel)
	if !ok {
		return
	}
	c.mu.Lock()
	mine := c.shards[s.slot] == s
	has := s.rooms[room]
	c.mu.Unlock()
	if !mine {
		return // a closed shard's late reply
	}
	switch {
	case m.Kind == "ssubscribe" && has:
		if c.subs.confirm(room) && c.opts.OnResubscribed != nil {
			c.opts.OnResubscribed(room)
		}
	case m.Kind == "sunsubscribe" && has:
		// The node unsubscribed on its own: the slot moved away.
		c.failed()
		c.opts.Logger.Warn("redis cluster slot moved", "slot", s.slot)
		c.reopen(s)
	case m.Kind == "sunsubscribe":
		c.subs.unconfirm(room)
	}
}

// reopen closes s, marks its rooms lost and, after the cluster client has
// had a moment to reload the slot map, has the next batch open a new shard
// for those still wanted, on the slot's owner as then known. It runs on
// s's receive goroutine, which ends after it.
func (c *Cluster) reopen(s *shard) {
	c.mu.Lock()
	if c.shards[s.slot] != s {
		c.mu.Unlock()
		return
	}
	delete(c.shards, s.slot)
	rooms := s.rooms
	c.mu.Unlock()

	s.close()
	c.subs.lose(rooms)
	c.opts.Client.ReloadState(c.ctx)
	c.pause()
	for room := range rooms {
		c.subs.resend(room)
	}
}
