package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Store shared by auth replicas. Every key starts with the
// prefix given to NewRedis. Scripts touch several keys of one user or
// session, so the store needs a single Redis (or a primary with replicas),
// not Redis Cluster.
//
// Keys:
//
//	<p>user:<id>         hash  email, hash
//	<p>email:<email>     string user id
//	<p>sess:<id>         hash  user, created, expires (unix ms), cur, prev,
//	                           old (older hashes, 32 bytes each), rotated;
//	                           expires with the session
//	<p>seal:<id>         string the current token sealed under the previous
//	                           one; expires the grace after the rotation
//	                           that wrote it (by Redis's clock), and is not
//	                           written at all when the grace is 0
//	<p>usess:<user>      set   session ids; each new session drops up to
//	                           8 ended ones picked at random, so the set
//	                           stays near the number of live sessions
//	<p>members:<conv>    set   user ids
//	<p>convs:<user>      set   conversation ids
//	<p>revocations       pub/sub channel of events, JSON
type Redis struct {
	c      *redis.Client
	prefix string
}

// NewRedis wraps a client. The caller owns c and closes it after Close.
func NewRedis(c *redis.Client, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

func (r *Redis) key(parts ...string) string {
	k := r.prefix
	for _, p := range parts {
		k += p
	}
	return k
}

func (r *Redis) channel() string { return r.prefix + "revocations" }

// wireEvent is an event on the revocation channel; scripts build it with
// cjson, so its field names are short and stable.
type wireEvent struct {
	Kind string `json:"k"`
	Sess string `json:"s,omitempty"`
	User string `json:"u"`
	Conv string `json:"c,omitempty"`
}

var createUserScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'email', ARGV[2], 'hash', ARGV[3])
return 1
`)

// CreateUser implements Store.
func (r *Redis) CreateUser(ctx context.Context, u User) error {
	ok, err := createUserScript.Run(ctx, r.c,
		[]string{r.key("email:", u.Email), r.key("user:", u.ID)},
		u.ID, u.Email, u.PasswordHash).Int()
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	if ok == 0 {
		return ErrExists
	}
	return nil
}

// UserByEmail implements Store.
func (r *Redis) UserByEmail(ctx context.Context, email string) (User, error) {
	id, err := r.c.Get(ctx, r.key("email:", email)).Result()
	if errors.Is(err, redis.Nil) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("find user: %w", err)
	}
	hash, err := r.c.HGet(ctx, r.key("user:", id), "hash").Result()
	if errors.Is(err, redis.Nil) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("find user: %w", err)
	}
	return User{ID: id, Email: email, PasswordHash: hash}, nil
}

var createSessionScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'created', ARGV[2], 'expires', ARGV[3], 'cur', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
for _, sid in ipairs(redis.call('SRANDMEMBER', KEYS[2], 8)) do
  if redis.call('EXISTS', ARGV[5] .. sid) == 0 then redis.call('SREM', KEYS[2], sid) end
end
redis.call('SADD', KEYS[2], ARGV[6])
if redis.call('PTTL', KEYS[2]) < 0 then
  redis.call('PEXPIREAT', KEYS[2], ARGV[3])
else
  redis.call('PEXPIREAT', KEYS[2], ARGV[3], 'GT')
end
return 1
`)

// CreateSession implements Store.
func (r *Redis) CreateSession(ctx context.Context, s Session, refresh Hash) error {
	ok, err := createSessionScript.Run(ctx, r.c,
		[]string{r.key("sess:", s.ID), r.key("usess:", s.UserID)},
		s.UserID, s.Created.UnixMilli(), s.Expires.UnixMilli(), refresh[:],
		r.key("sess:"), s.ID).Int()
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if ok == 0 {
		return ErrExists
	}
	return nil
}

// Session implements Store.
func (r *Redis) Session(ctx context.Context, id string, now time.Time) (Session, error) {
	v, err := r.c.HMGet(ctx, r.key("sess:", id), "user", "created", "expires").Result()
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	s, ok := parseSession(id, v[0], v[1], v[2])
	if !ok || !now.Before(s.Expires) {
		return Session{}, ErrNotFound
	}
	return s, nil
}

func parseSession(id string, user, created, expires any) (Session, bool) {
	u, ok1 := user.(string)
	c, ok2 := created.(string)
	e, ok3 := expires.(string)
	if !ok1 || !ok2 || !ok3 {
		return Session{}, false
	}
	cm, err1 := strconv.ParseInt(c, 10, 64)
	em, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil {
		return Session{}, false
	}
	return Session{ID: id, UserID: u, Created: time.UnixMilli(cm), Expires: time.UnixMilli(em)}, true
}

// revokeLua ends a session and publishes the event. KEYS[1] is the
// session key, KEYS[2] its seal key.
const revokeLua = `
local function revoke(sid, user, prefix)
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SREM', prefix .. 'usess:' .. user, sid)
  redis.call('PUBLISH', prefix .. 'revocations', cjson.encode({k = 's', s = sid, u = user}))
end
`

var rotateScript = redis.NewScript(revokeLua + `
local sid, presented, nextHash, sealed = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, grace, prefix, histLen = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local s = redis.call('HMGET', KEYS[1], 'user', 'created', 'expires', 'cur', 'prev', 'old', 'rotated')
if not s[1] then return {'gone'} end
if tonumber(s[3]) <= now then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SREM', prefix .. 'usess:' .. s[1], sid)
  return {'gone'}
end
if s[4] == presented then
  local old = s[6] or ''
  if s[5] then old = string.sub(s[5] .. old, 1, 32 * histLen) end
  redis.call('HSET', KEYS[1], 'prev', s[4], 'cur', nextHash, 'old', old, 'rotated', now)
  if grace > 0 then
    redis.call('SET', KEYS[2], sealed, 'PX', grace + 1)
  else
    redis.call('DEL', KEYS[2])
  end
  return {'rotated', s[1], s[2], s[3]}
end
if s[5] == presented and now - tonumber(s[7]) <= grace then
  local current = redis.call('GET', KEYS[2])
  if current then return {'replayed', s[1], s[2], s[3], current} end
end
local reused = (s[5] == presented)
local old = s[6] or ''
for i = 0, #old / 32 - 1 do
  if string.sub(old, i * 32 + 1, i * 32 + 32) == presented then reused = true end
end
if reused then
  revoke(sid, s[1], prefix)
  return {'reused', s[1], s[2], s[3]}
end
return {'unknown'}
`)

// Rotate implements Store.
func (r *Redis) Rotate(ctx context.Context, rot Rotation) (RotateResult, error) {
	v, err := rotateScript.Run(ctx, r.c, []string{r.key("sess:", rot.SessionID), r.key("seal:", rot.SessionID)},
		rot.SessionID, rot.Presented[:], rot.Next[:], rot.NextSealed,
		rot.Now.UnixMilli(), rot.Grace.Milliseconds(), r.prefix, HistoryLen).StringSlice()
	if err != nil {
		return RotateResult{}, fmt.Errorf("rotate session: %w", err)
	}
	var res RotateResult
	switch v[0] {
	case "rotated":
		res.Outcome = Rotated
	case "replayed":
		res.Outcome = Replayed
		res.Sealed = []byte(v[4])
	case "reused":
		res.Outcome = Reused
	case "unknown":
		return RotateResult{Outcome: Unknown}, nil
	default:
		return RotateResult{Outcome: Gone}, nil
	}
	s, ok := parseSession(rot.SessionID, v[1], v[2], v[3])
	if !ok {
		return RotateResult{}, errors.New("rotate session: unreadable session record")
	}
	res.Session = s
	return res, nil
}

var revokeSessionScript = redis.NewScript(revokeLua + `
local s = redis.call('HMGET', KEYS[1], 'user', 'created', 'expires', 'cur', 'prev')
if not s[1] then return false end
if ARGV[2] ~= '' and s[4] ~= ARGV[2] and s[5] ~= ARGV[2] then return false end
revoke(ARGV[1], s[1], ARGV[3])
return {s[1], s[2], s[3]}
`)

// RevokeSession implements Store.
func (r *Redis) RevokeSession(ctx context.Context, id string, presented *Hash) (Session, error) {
	p := ""
	if presented != nil {
		p = string(presented[:])
	}
	keys := []string{r.key("sess:", id), r.key("seal:", id)}
	v, err := revokeSessionScript.Run(ctx, r.c, keys, id, p, r.prefix).StringSlice()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("revoke session: %w", err)
	}
	s, ok := parseSession(id, v[0], v[1], v[2])
	if !ok {
		return Session{}, errors.New("revoke session: unreadable session record")
	}
	return s, nil
}

var revokeUserScript = redis.NewScript(`
local ids = {}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('DEL', ARGV[1] .. 'seal:' .. sid)
  if redis.call('DEL', ARGV[1] .. 'sess:' .. sid) == 1 then
    table.insert(ids, sid)
    redis.call('PUBLISH', ARGV[1] .. 'revocations', cjson.encode({k = 's', s = sid, u = ARGV[2]}))
  end
end
redis.call('DEL', KEYS[1])
return ids
`)

// RevokeUserSessions implements Store.
func (r *Redis) RevokeUserSessions(ctx context.Context, userID string) ([]string, error) {
	ids, err := revokeUserScript.Run(ctx, r.c, []string{r.key("usess:", userID)}, r.prefix, userID).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("revoke user sessions: %w", err)
	}
	return ids, nil
}

var grantScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
`)

// Grant implements Store.
func (r *Redis) Grant(ctx context.Context, userID, conversationID string) error {
	err := grantScript.Run(ctx, r.c,
		[]string{r.key("members:", conversationID), r.key("convs:", userID)},
		userID, conversationID).Err()
	if err != nil {
		return fmt.Errorf("grant access: %w", err)
	}
	return nil
}

var revokeAccessScript = redis.NewScript(`
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], cjson.encode({k = 'a', u = ARGV[1], c = ARGV[2]}))
return 1
`)

// RevokeAccess implements Store.
func (r *Redis) RevokeAccess(ctx context.Context, userID, conversationID string) (bool, error) {
	n, err := revokeAccessScript.Run(ctx, r.c,
		[]string{r.key("members:", conversationID), r.key("convs:", userID)},
		userID, conversationID, r.channel()).Int()
	if err != nil {
		return false, fmt.Errorf("revoke access: %w", err)
	}
	return n == 1, nil
}

// Allowed implements Store.
func (r *Redis) Allowed(ctx context.Context, userID, conversationID string) (bool, error) {
	ok, err := r.c.SIsMember(ctx, r.key("members:", conversationID), userID).Result()
	if err != nil {
		return false, fmt.Errorf("check access: %w", err)
	}
	return ok, nil
}

// Members implements Store.
func (r *Redis) Members(ctx context.Context, conversationID string, limit int) ([]string, error) {
	return r.list(ctx, r.key("members:", conversationID), limit)
}

// Conversations implements Store.
func (r *Redis) Conversations(ctx context.Context, userID string, limit int) ([]string, error) {
	return r.list(ctx, r.key("convs:", userID), limit)
}

func (r *Redis) list(ctx context.Context, key string, limit int) ([]string, error) {
	out, err := r.c.Sort(ctx, key, &redis.Sort{Alpha: true, Offset: 0, Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return out, nil
}

// Close implements Store. It does not close the client.
func (r *Redis) Close() error { return nil }

// redisSub turns a pub/sub connection into events. go-redis reconnects and
// subscribes again by itself; each renewed subscription is reported as a
// Reset, since events published meanwhile were lost.
type redisSub struct {
	ps   *redis.PubSub
	ch   chan Event
	done chan struct{}
}

// Subscribe implements Store.
func (r *Redis) Subscribe(ctx context.Context) (Subscription, error) {
	ps := r.c.Subscribe(ctx, r.channel())
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribe to revocations: %w", err)
	}
	s := &redisSub{ps: ps, ch: make(chan Event, subscriberBuffer), done: make(chan struct{})}
	go s.run()
	return s, nil
}

func (s *redisSub) C() <-chan Event { return s.ch }

// Close ends the subscription and waits for its goroutine.
func (s *redisSub) Close() {
	s.ps.Close()
	<-s.done
}

func (s *redisSub) run() {
	defer close(s.done)
	defer close(s.ch)
	for msg := range s.ps.ChannelWithSubscriptions(redis.WithChannelSize(subscriberBuffer)) {
		e, ok := decodeEvent(msg)
		if !ok {
			continue
		}
		select {
		case s.ch <- e:
		default:
			// Too slow: end the subscription so the reader knows it lost
			// events. Closing ps ends the range above.
			s.ps.Close()
			return
		}
	}
}

func decodeEvent(msg any) (Event, bool) {
	switch m := msg.(type) {
	case *redis.Subscription:
		return Event{Kind: Reset}, m.Kind == "subscribe"
	case *redis.Message:
		var w wireEvent
		if err := json.Unmarshal([]byte(m.Payload), &w); err != nil {
			return Event{}, false
		}
		switch w.Kind {
		case "s":
			return Event{Kind: SessionRevoked, SessionID: w.Sess, UserID: w.User}, true
		case "a":
			return Event{Kind: AccessRevoked, UserID: w.User, ConversationID: w.Conv}, true
		}
	}
	return Event{}, false
}
