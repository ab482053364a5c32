package broker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Client publishes and owns the pub/sub connection. Required. Set its
	// ContextTimeoutEnabled so that a paused Redis fails publishes in time.
	Client *redis.Client
	// Prefix starts every channel and key. Empty: "sb:".
	Prefix string
	// History bounds each room's history and the idempotency window.
	History HistoryOptions
	// BatchMax caps the channels of one SUBSCRIBE or UNSUBSCRIBE. Zero: 512.
	BatchMax int
	// Logger receives connection errors. Nil: discarded.
	Logger *slog.Logger
	// OnError, if set, is called for every Redis error the broker meets.
	OnError func()
	// OnForward receives payloads forwarded to this replica. Nil: dropped.
	OnForward ForwardHandler
	// OnResubscribed, if set, is called for each room whose subscription
	// was confirmed again after the pub/sub connection was lost: messages
	// published meanwhile did not arrive. It must not block.
	OnResubscribed func(room string)
}

// Redis is the broker over Redis pub/sub.
type Redis struct {
	// Read-only after construction.
	opts    RedisOptions
	handler Handler
	ps      *redis.PubSub
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	commands
}

// NewRedis starts a broker delivering to h; Close stops it.
func NewRedis(opts RedisOptions, h Handler) *Redis {
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
	r := &Redis{opts: opts, handler: h, cancel: cancel, ps: opts.Client.Subscribe(ctx)}
	r.commands = commands{
		history: RedisHistory{
			Client: opts.Client, Prefix: opts.Prefix, Opts: opts.History,
			pipeline: newPublishPipeline(opts.Client),
		},
		prefix: opts.Prefix,
		send: func(ctx context.Context, channel string, payload []byte) (int64, error) {
			return opts.Client.Publish(ctx, channel, payload).Result()
		},
		failed: r.failed,
		via:    "redis",
		subs:   newSubscriptions(),
	}
	r.wg.Add(2)
	go r.receive(ctx)
	go r.batch(ctx)
	return r
}

func (r *Redis) channel(room string) string { return KeysOf(r.opts.Prefix, room).Channel }

func (r *Redis) room(channel string) (string, bool) { return roomOf(r.opts.Prefix, channel) }

// roomOf returns the room of a channel named by KeysOf(prefix, room).
func roomOf(prefix, channel string) (string, bool) {
	s, ok := strings.CutPrefix(channel, prefix+"{")
	if !ok || !strings.HasSuffix(s, "}") {
		return "", false
	}
	return s[:len(s)-1], true
}

// Close stops both goroutines and closes the pub/sub connection.
func (r *Redis) Close() error {
	r.subs.close()
	r.cancel()
	err := r.ps.Close()
	r.wg.Wait()
	return err
}

func (r *Redis) failed() {
	if r.opts.OnError != nil {
		r.opts.OnError()
	}
}

// batch turns changes of want into SUBSCRIBE and UNSUBSCRIBE commands, as
// many channels per command as BatchMax allows.
func (r *Redis) batch(ctx context.Context) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.subs.dirty:
		}
		sub, unsub := r.subs.diff()
		r.send(ctx, r.channels(sub), r.ps.Subscribe)
		r.send(ctx, r.channels(unsub), r.ps.Unsubscribe)
	}
}

func (r *Redis) channels(rooms []string) []string {
	chans := make([]string, len(rooms))
	for i, room := range rooms {
		chans[i] = r.channel(room)
	}
	return chans
}

// send issues cmd over channels in chunks. A failed write is not retried
// here: go-redis resubscribes to every channel it was asked for when it
// reconnects the pub/sub connection.
func (r *Redis) send(ctx context.Context, channels []string, cmd func(context.Context, ...string) error) {
	for len(channels) > 0 {
		n := min(len(channels), r.opts.BatchMax)
		if err := cmd(ctx, channels[:n]...); err != nil && ctx.Err() == nil {
			r.failed()
			r.opts.Logger.Warn("redis pub/sub command failed", "error", err)
		}
		channels = channels[n:]
	}
}

// receive reads the pub/sub connection: acknowledgements update confirmed,
// messages go to the handler. A broken connection is reconnected by go-redis
// on the next read, which resubscribes every channel.
func (r *Redis) receive(ctx context.Context) {
	defer r.wg.Done()
	for {
		v, err := r.ps.ReceiveTimeout(ctx, 15*time.Second)
		if r.subs.isClosed() {
			return
		}
		if err != nil {
			r.receiveFailed(ctx, err)
			continue
		}
		switch m := v.(type) {
		case *redis.Subscription:
			r.acknowledged(m)
		case *redis.Message:
			r.deliver(m)
		}
	}
}

func (r *Redis) receiveFailed(ctx context.Context, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if err := r.ps.Ping(ctx); err == nil {
			return
		}
	}
	r.failed()
	r.opts.Logger.Warn("redis pub/sub connection lost", "error", err)
	r.subs.lose(nil)

	wait := time.Duration(rand.Int64N(int64(500 * time.Millisecond)))
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
}

func (r *Redis) acknowledged(s *redis.Subscription) {
	room, ok := r.room(s.Channel)
	if !ok {
		return
	}
	switch s.Kind {
	case "subscribe":
		if r.subs.confirm(room) && r.opts.OnResubscribed != nil {
			r.opts.OnResubscribed(room)
		}
	case "unsubscribe":
		r.subs.unconfirm(room)
	}
}

func (r *Redis) deliver(m *redis.Message) {
	room, ok := r.room(m.Channel)
	if !ok {
		return
	}
	dispatch(room, m.Payload, r.handler, r.opts.OnForward, r.opts.Logger)
}

// dispatch hands a payload received on room's channel to the forward
// handler (a node room) or, parsed, to h.
func dispatch(room, payload string, h Handler, fwd ForwardHandler, log *slog.Logger) {
	if strings.HasPrefix(room, NodeRoom("")) {
		if fwd != nil {
			fwd([]byte(payload))
		}
		return
	}
	msg, ok := parsePayload(room, payload)
	if !ok {
		log.Warn("malformed message on redis channel", "room", room)
		return
	}
	h(msg)
}

// parsePayload reads "<epoch> <offset> <unix nanos> <data>".
func parsePayload(room, p string) (Message, bool) {
	parts := strings.SplitN(p, " ", 4)
	if len(parts) != 4 {
		return Message{}, false
	}
	off, err1 := strconv.ParseUint(parts[1], 10, 64)
	ns, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return Message{}, false
	}
	return Message{
		Room: room, Data: []byte(parts[3]), Epoch: parts[0], Offset: off,
		Published: time.Unix(0, ns),
	}, true
}
