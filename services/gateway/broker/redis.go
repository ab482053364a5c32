package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// publishScript increments a room's offset, keeps (or starts) its epoch and
// publishes the message with its position, in one atomic step.
//
// KEYS[1]: the room's position hash. ARGV: channel, epoch to start with,
// retention in seconds, "<unix nanos> <data>".
var publishScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[2]
  redis.call('HSET', KEYS[1], 'e', e)
end
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], e .. ' ' .. o .. ' ' .. ARGV[4])
return {e, o}
`)

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Client publishes and owns the pub/sub connection. Required. Set its
	// ContextTimeoutEnabled so that a paused Redis fails publishes in time.
	Client *redis.Client
	// Prefix starts every channel and key. Empty: "sb:".
	Prefix string
	// Retention is how long a room's position outlives its last publish.
	// Zero: 24 hours. After it the room starts a new epoch.
	Retention time.Duration
	// BatchMax caps the channels of one SUBSCRIBE or UNSUBSCRIBE. Zero: 512.
	BatchMax int
	// Logger receives connection errors. Nil: discarded.
	Logger *slog.Logger
	// OnError, if set, is called for every Redis error the broker meets.
	OnError func()
	// OnForward receives payloads forwarded to this replica. Nil: dropped.
	OnForward ForwardHandler
}

// Redis is the broker over Redis pub/sub.
type Redis struct {
	// Read-only after construction.
	opts    RedisOptions
	handler Handler
	ps      *redis.PubSub
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	dirty   chan struct{} // capacity 1: a batch is due

	// Guarded by mu.
	mu        sync.Mutex
	want      map[string]bool          // rooms this replica wants
	sent      map[string]bool          // rooms with a SUBSCRIBE in effect
	confirmed map[string]bool          // rooms Redis acknowledged
	waiters   map[string]chan struct{} // closed when the room is confirmed
	closed    bool
}

// NewRedis starts a broker delivering to h; Close stops it.
func NewRedis(opts RedisOptions, h Handler) *Redis {
	if opts.Prefix == "" {
		opts.Prefix = "sb:"
	}
	if opts.Retention == 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.BatchMax == 0 {
		opts.BatchMax = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Redis{
		opts: opts, handler: h, cancel: cancel,
		ps:    opts.Client.Subscribe(ctx),
		dirty: make(chan struct{}, 1),
		want:  make(map[string]bool), sent: make(map[string]bool),
		confirmed: make(map[string]bool), waiters: make(map[string]chan struct{}),
	}
	r.wg.Add(2)
	go r.receive(ctx)
	go r.batch(ctx)
	return r
}

func (r *Redis) channel(room string) string { return r.opts.Prefix + "{" + room + "}" }

func (r *Redis) room(channel string) (string, bool) {
	s, ok := strings.CutPrefix(channel, r.opts.Prefix+"{")
	if !ok || !strings.HasSuffix(s, "}") {
		return "", false
	}
	return s[:len(s)-1], true
}

// Publish runs the publish script. An error means the message may or may
// not have been published.
func (r *Redis) Publish(ctx context.Context, room string, data []byte) (string, uint64, error) {
	ch := r.channel(room)
	body := strconv.FormatInt(time.Now().UnixNano(), 10) + " " + string(data)
	res, err := publishScript.Run(ctx, r.opts.Client, []string{ch + ":pos"},
		ch, newEpoch(), int64(r.opts.Retention/time.Second), body).Slice()
	if err != nil {
		r.failed()
		return "", 0, fmt.Errorf("publish to redis: %w", err)
	}
	if len(res) != 2 {
		return "", 0, fmt.Errorf("publish to redis: unexpected reply %v", res)
	}
	epoch, _ := res[0].(string)
	off, _ := res[1].(int64)
	return epoch, uint64(off), nil
}

// Forward publishes payload on node's channel.
func (r *Redis) Forward(ctx context.Context, node string, payload []byte) (bool, error) {
	n, err := r.opts.Client.Publish(ctx, r.channel(NodeRoom(node)), payload).Result()
	if err != nil {
		r.failed()
		return false, fmt.Errorf("forward through redis: %w", err)
	}
	return n > 0, nil
}

// Want records the wanted rooms; the batch goroutine sends the commands.
func (r *Redis) Want(rooms []string, want bool) {
	r.mu.Lock()
	for _, room := range rooms {
		if want {
			r.want[room] = true
		} else {
			delete(r.want, room)
			delete(r.waiters, room) // its waiters give up on their own ctx
		}
	}
	r.mu.Unlock()
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// Ready waits for Redis to acknowledge room's subscription.
func (r *Redis) Ready(ctx context.Context, room string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.confirmed[room] {
		r.mu.Unlock()
		return nil
	}
	ch, ok := r.waiters[room]
	if !ok {
		ch = make(chan struct{})
		r.waiters[room] = ch
	}
	r.mu.Unlock()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for subscription: %w", ctx.Err())
	}
}

// Close stops both goroutines and closes the pub/sub connection.
func (r *Redis) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	err := r.ps.Close()
	r.wg.Wait()
	return err
}

func (r *Redis) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
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
		case <-r.dirty:
		}
		sub, unsub := r.diff()
		r.send(ctx, sub, r.ps.Subscribe)
		r.send(ctx, unsub, r.ps.Unsubscribe)
	}
}

// diff returns the channels to subscribe and unsubscribe, and records them
// as sent.
func (r *Redis) diff() (sub, unsub []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for room := range r.want {
		if !r.sent[room] {
			r.sent[room] = true
			sub = append(sub, r.channel(room))
		}
	}
	for room := range r.sent {
		if !r.want[room] {
			delete(r.sent, room)
			unsub = append(unsub, r.channel(room))
		}
	}
	return sub, unsub
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
		if r.isClosed() {
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
	r.mu.Lock()
	clear(r.confirmed)
	r.mu.Unlock()

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
	r.mu.Lock()
	defer r.mu.Unlock()
	switch s.Kind {
	case "subscribe":
		r.confirmed[room] = true
		if ch, ok := r.waiters[room]; ok {
			close(ch)
			delete(r.waiters, room)
		}
	case "unsubscribe":
		delete(r.confirmed, room)
	}
}

func (r *Redis) deliver(m *redis.Message) {
	room, ok := r.room(m.Channel)
	if !ok {
		return
	}
	if strings.HasPrefix(room, NodeRoom("")) {
		if r.opts.OnForward != nil {
			r.opts.OnForward([]byte(m.Payload))
		}
		return
	}
	msg, ok := parsePayload(room, m.Payload)
	if !ok {
		r.opts.Logger.Warn("malformed message on redis channel", "room", room)
		return
	}
	r.handler(msg)
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
