package hub

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/telemetry"
)

// Member is a connection as the hub sees it.
type Member interface {
	// Send queues frame for writing without blocking. published is when the
	// message was published, for the latency metric (zero: not a message).
	Send(frame []byte, published time.Time)
	// AccessRevoked tells the member its user may no longer see room.
	AccessRevoked(room string)
	// SessionRevoked tells the member that session ended.
	SessionRevoked(session string)
	// Close closes the member with code, without blocking.
	Close(code protocol.CloseCode)
}

// Errors of Register.
var (
	ErrTooManyForUser = errors.New("too many connections for this user")
	ErrNodeFull       = errors.New("too many connections on this replica")
)

// Options configure New.
type Options struct {
	// MaxConnections caps this replica's connections. Zero: no cap.
	MaxConnections int
	// MaxPerUser caps one user's connections on this replica. Zero: no cap.
	MaxPerUser int
	// Metrics receives the gauges. Nil: discarded.
	Metrics *telemetry.Metrics
}

const shardCount = 64

type shard struct {
	mu    sync.RWMutex
	rooms map[string]map[Member]struct{} // guarded by mu
}

// Hub is one replica's rooms.
type Hub struct {
	// Read-only after construction (broker after SetBroker, before use).
	opts   Options
	broker broker.Broker
	seed   maphash.Seed
	shards [shardCount]shard

	// Guarded by usersMu.
	usersMu sync.Mutex
	users   map[string]map[Member]struct{}
	total   int
}

// New returns an empty hub. Call SetBroker before any Join.
func New(opts Options) *Hub {
	if opts.Metrics == nil {
		opts.Metrics = telemetry.Discard()
	}
	h := &Hub{opts: opts, seed: maphash.MakeSeed(), users: make(map[string]map[Member]struct{})}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]map[Member]struct{})
	}
	return h
}

// SetBroker sets the broker the hub subscribes through. The broker's
// handler is the hub's Deliver, hence the two steps.
func (h *Hub) SetBroker(b broker.Broker) { h.broker = b }

func (h *Hub) shard(room string) *shard {
	return &h.shards[maphash.String(h.seed, room)%shardCount]
}

// Join adds m to room and waits until the broker delivers room's messages
// here. On error m is not a member.
func (h *Hub) Join(ctx context.Context, room string, m Member) error {
	s := h.shard(room)
	s.mu.Lock()
	members, ok := s.rooms[room]
	if !ok {
		members = make(map[Member]struct{})
		s.rooms[room] = members
	}
	_, was := members[m]
	members[m] = struct{}{}
	s.mu.Unlock()

	if !ok {
		h.opts.Metrics.Rooms.Inc()
		h.broker.Want([]string{room}, true)
	}
	if !was {
		h.opts.Metrics.Members.Inc()
	}
	if err := h.broker.Ready(ctx, room); err != nil {
		h.Leave(room, m)
		return err
	}
	return nil
}

// Leave removes m from room and reports whether it was a member.
func (h *Hub) Leave(room string, m Member) bool {
	s := h.shard(room)
	s.mu.Lock()
	members := s.rooms[room]
	_, was := members[m]
	delete(members, m)
	last := was && len(members) == 0
	if last {
		delete(s.rooms, room)
	}
	s.mu.Unlock()

	if was {
		h.opts.Metrics.Members.Dec()
	}
	if last {
		h.opts.Metrics.Rooms.Dec()
		h.broker.Want([]string{room}, false)
	}
	return was
}

// Members returns the number of members of room here.
func (h *Hub) Members(room string) int {
	s := h.shard(room)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.rooms[room])
}

// Deliver hands msg to every member of its room here. It is the broker's
// handler.
func (h *Hub) Deliver(msg broker.Message) {
	s := h.shard(msg.Room)
	s.mu.RLock()
	defer s.mu.RUnlock()
	members := s.rooms[msg.Room]
	if len(members) == 0 {
		return
	}
	frame := EncodeMessage(msg)
	for m := range members {
		m.Send(frame, msg.Published)
	}
	h.opts.Metrics.Deliveries.Add(float64(len(members)))
}

// EncodeMessage returns the message push of msg.
func EncodeMessage(msg broker.Message) []byte {
	b, _ := json.Marshal(protocol.Frame{
		Type: protocol.TypeMessage, Room: msg.Room, Data: msg.Data,
		Epoch: msg.Epoch, Offset: msg.Offset,
	})
	return b
}
