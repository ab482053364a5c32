package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotRecoverable answers History when the messages after a position
// cannot all be served: the room's epoch changed, or the position is
// older than the room's history keeps.
var ErrNotRecoverable = errors.New("position not recoverable")

// Retention bounds one kind of room's history: at most Size messages, and
// none older than TTL. A room idle for TTL loses its history and its
// position: its next publish starts a new epoch.
type Retention struct {
	Size int
	TTL  time.Duration
}

// HistoryOptions bound the history of every room and the idempotency
// window. Zero fields take the defaults they name.
type HistoryOptions struct {
	// User bounds user rooms (user:<id>). Zero: 100 messages, 1 hour.
	User Retention
	// Conversation bounds conversation rooms and any other room. Zero:
	// 1,000 messages, 24 hours.
	Conversation Retention
	// IdempotencyWindow is how long a publish's idempotency key is
	// remembered. Zero: 5 minutes.
	IdempotencyWindow time.Duration
}

// WithDefaults fills the zero fields.
func (o HistoryOptions) WithDefaults() HistoryOptions {
	def := func(r *Retention, size int, ttl time.Duration) {
		if r.Size == 0 {
			r.Size = size
		}
		if r.TTL == 0 {
			r.TTL = ttl
		}
	}
	def(&o.User, 100, time.Hour)
	def(&o.Conversation, 1000, 24*time.Hour)
	if o.IdempotencyWindow == 0 {
		o.IdempotencyWindow = 5 * time.Minute
	}
	return o
}

// For returns the retention of room's kind.
func (o HistoryOptions) For(room string) Retention {
	if strings.HasPrefix(room, "user:") {
		return o.User
	}
	return o.Conversation
}

// RoomKeys names the Redis keys of one room. They share the hash tag
// {room}, so that a script over them runs on one Redis Cluster node.
type RoomKeys struct {
	Channel  string // prefix{room}: the pub/sub channel
	Position string // prefix{room}:pos: hash of e (epoch), o (offset), f (the first entry's time, or earlier)
	Stream   string // prefix{room}:h: the history, entry ids <offset>-0
}

// KeysOf returns room's keys under prefix.
func KeysOf(prefix, room string) RoomKeys {
	ch := prefix + "{" + room + "}"
	return RoomKeys{Channel: ch, Position: ch + ":pos", Stream: ch + ":h"}
}

// IdempotencyKey names the key remembering a publish's idempotency key.
func (k RoomKeys) IdempotencyKey(key string) string { return k.Channel + ":i:" + key }

// publishScript dedupes by idempotency key, increments the room's offset
// (starting a new epoch, and an empty stream, when the room's position is
// missing), appends to the stream bounded by length and age, and publishes
// "<epoch> <offset> <unix nanos> <data>", in one atomic step. It returns
// {epoch, offset, 1 if the key was seen before}.
//
// The position's field f holds the time of the stream's first entry, or
// an earlier one: the age check reads the stream only when f is older
// than the cut (the length bound may have removed that entry since), so
// that most publishes read no entry (reading the first on every publish
// took about a quarter of the script's time in Redis).
//
// KEYS: position, stream, [idempotency key]. ARGV: channel, epoch to
// start with, TTL in seconds, max length, now in unix ms, now in unix
// nanos, data, idempotency window in ms, publish command (PUBLISH, or
// SPUBLISH on a cluster: the channel carries the same hash tag).
var publishScript = redis.NewScript(`
if KEYS[3] then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local se, so = string.match(seen, '^(%S+) (%d+)$')
    return {se, tonumber(so), 1}
  end
end
local pos = redis.call('HMGET', KEYS[1], 'e', 'f')
local e, f = pos[1], pos[2]
if not e then
  e = ARGV[2]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e)
end
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], o .. '-0', 't', ARGV[5], 'd', ARGV[7])
local cut = tonumber(ARGV[5]) - tonumber(ARGV[3]) * 1000
if not f or tonumber(f) < cut then
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  if tonumber(first[2][2]) < cut then
    local lo = tonumber(string.match(first[1], '^%d+'))
    local hi = o
    while hi - lo > 1 do
      local mid = math.floor((lo + hi) / 2)
      local m = redis.call('XRANGE', KEYS[2], mid .. '-0', mid .. '-0')[1]
      if m and tonumber(m[2][2]) < cut then lo = mid else hi = mid end
    end
    redis.call('XTRIM', KEYS[2], 'MINID', hi .. '-0')
    first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  end
  redis.call('HSET', KEYS[1], 'f', first[2][2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call(ARGV[9], ARGV[1], e .. ' ' .. o .. ' ' .. ARGV[6] .. ' ' .. ARGV[7])
if KEYS[3] then
  redis.call('SET', KEYS[3], e .. ' ' .. o, 'PX', ARGV[8])
end
return {e, o, 0}
`)

// historyScript returns {epoch, offset, entries after ARGV[2]} when the
// room is in epoch ARGV[1] and its stream still holds the entry right
// after that position, or {epoch, -1} when it is not recoverable.
//
// KEYS: position, stream. ARGV: epoch, offset.
var historyScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if e ~= ARGV[1] then return {e or '', -1} end
local o = tonumber(redis.call('HGET', KEYS[1], 'o'))
local after = tonumber(ARGV[2])
if after > o then return {e, -1} end
if after == o then return {e, o, {}} end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
if not first or tonumber(string.match(first[1], '^%d+')) > after + 1 then
  return {e, -1}
end
return {e, o, redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+')}
`)

// PublishArgs is one publish as the scripts take it.
type PublishArgs struct {
	Room string
	Data []byte
	Key  string // idempotency key; empty: none
}

// RedisHistory runs the history scripts; a broker over a single Redis or
// over a cluster shares it.
type RedisHistory struct {
	Client redis.Scripter
	Prefix string
	Opts   HistoryOptions // with defaults applied
	// PublishCommand sends the message to the room's channel from the
	// script: "PUBLISH", or "SPUBLISH" for sharded pub/sub on a cluster.
	// Empty: PUBLISH.
	PublishCommand string

	// pipeline, when set, sends publishes that wait at the same time as
	// one pipeline; nil: each publish is a command of its own.
	pipeline *publishPipeline
}

// Publish runs the publish script. It reports whether the idempotency key
// had been seen, in which case nothing was published and the position is
// the original one. An error means the message may or may not have been
// published.
func (h RedisHistory) Publish(ctx context.Context, p PublishArgs) (string, uint64, bool, error) {
	keys, args := h.scriptArgs(p)
	var res []any
	var err error
	if h.pipeline != nil {
		res, err = h.pipeline.run(ctx, keys, args)
	} else {
		res, err = publishScript.Run(ctx, h.Client, keys, args...).Slice()
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("publish to redis: %w", err)
	}
	if len(res) != 3 {
		return "", 0, false, fmt.Errorf("publish to redis: unexpected reply of %d values", len(res))
	}
	epoch, _ := res[0].(string)
	off, _ := res[1].(int64)
	dup, _ := res[2].(int64)
	return epoch, uint64(off), dup == 1, nil
}

// scriptArgs returns the publish script's keys and arguments for p.
func (h RedisHistory) scriptArgs(p PublishArgs) ([]string, []any) {
	k := KeysOf(h.Prefix, p.Room)
	keys := []string{k.Position, k.Stream}
	if p.Key != "" {
		keys = append(keys, k.IdempotencyKey(p.Key))
	}
	ret := h.Opts.For(p.Room)
	cmd := h.PublishCommand
	if cmd == "" {
		cmd = "PUBLISH"
	}
	now := time.Now()
	return keys, []any{k.Channel, newEpoch(), max(int64(ret.TTL/time.Second), 1), ret.Size,
		now.UnixMilli(), now.UnixNano(), p.Data, h.Opts.IdempotencyWindow.Milliseconds(), cmd}
}

// History returns room's messages after offset in epoch, in order, or
// ErrNotRecoverable.
func (h RedisHistory) History(ctx context.Context, room, epoch string, offset uint64) ([]Message, error) {
	k := KeysOf(h.Prefix, room)
	res, err := historyScript.Run(ctx, h.Client, []string{k.Position, k.Stream}, epoch, offset).Slice()
	if err != nil {
		return nil, fmt.Errorf("read history from redis: %w", err)
	}
	if len(res) < 2 {
		return nil, fmt.Errorf("read history from redis: unexpected reply of %d values", len(res))
	}
	if o, _ := res[1].(int64); o < 0 || len(res) < 3 {
		return nil, ErrNotRecoverable
	}
	entries, _ := res[2].([]any)
	msgs := make([]Message, 0, len(entries))
	for _, e := range entries {
		m, ok := parseEntry(room, epoch, e)
		if !ok {
			return nil, fmt.Errorf("read history from redis: malformed entry in %s", room)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// parseEntry reads a stream entry [id, [t, ms, d, data]].
func parseEntry(room, epoch string, e any) (Message, bool) {
	pair, _ := e.([]any)
	if len(pair) != 2 {
		return Message{}, false
	}
	id, _ := pair[0].(string)
	fields, _ := pair[1].([]any)
	if len(fields) != 4 {
		return Message{}, false
	}
	offStr, _, _ := strings.Cut(id, "-")
	off, err1 := strconv.ParseUint(offStr, 10, 64)
	ms, _ := fields[1].(string)
	t, err2 := strconv.ParseInt(ms, 10, 64)
	data, _ := fields[3].(string)
	if err1 != nil || err2 != nil {
		return Message{}, false
	}
	return Message{Room: room, Data: []byte(data), Epoch: epoch, Offset: off, Published: time.UnixMilli(t)}, true
}
