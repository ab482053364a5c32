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
	// Session returns the member's current session.
	Session() string
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

// MaxHeld bounds the messages held back for one room or one member while
// history is read; past it the member is closed as a slow consumer (it
// reconnects and recovers from its position).
const MaxHeld = 10_000

// RepairTimeout bounds one read of a room's history to repair a gap.
const RepairTimeout = 5 * time.Second

type shard struct {
	mu    sync.RWMutex
	rooms map[string]*room // guarded by mu
}

// room is one room's members and what this replica delivered of it.
type room struct {
	name string // read-only

	// Guarded by mu.
	mu sync.Mutex
	// members maps each member to its recovery state; nil: live.
	members map[Member]*recovery
	// epoch and last are the position last delivered here; "" and 0 until
	// the first message, and after a resync.
	epoch string
	last  uint64
	// seen is set once a message was delivered here: from then on a
	// message opening a new epoch past its first offset is a gap too.
	seen bool
	// lost is the epoch of the last repair that failed: its messages are
	// taken as they come, the members having been told to resync.
	lost string
	// repairing holds back every message while a gap is read from history.
	repairing bool
	held      []broker.Message
}

// recovery is a member's state while it recovers from a position: its
// live messages are held until Live, then those at or before the last
// position its recovery sent are dropped, held or still to come.
type recovery struct {
	holding bool
	held    []broker.Message
	epoch   string
	last    uint64
}

// skip reports whether msg was sent to the member by its recovery.
func (rc *recovery) skip(msg broker.Message) bool {
	return msg.Epoch == rc.epoch && msg.Offset <= rc.last
}

// Hub is one replica's rooms.
type Hub struct {
	// Read-only after construction (broker after SetBroker, before use).
	opts   Options
	broker broker.Broker
	seed   maphash.Seed
	shards [shardCount]shard
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // repairs in flight

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
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*room)
	}
	return h
}

// SetBroker sets the broker the hub subscribes through. The broker's
// handler is the hub's Deliver, hence the two steps.
func (h *Hub) SetBroker(b broker.Broker) { h.broker = b }

// Close stops the repairs in flight and waits for them.
func (h *Hub) Close() {
	h.cancel()
	h.wg.Wait()
}

func (h *Hub) shard(name string) *shard {
	return &h.shards[maphash.String(h.seed, name)%shardCount]
}

func (h *Hub) room(name string) *room {
	s := h.shard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[name]
}

// Join adds m to room and waits until the broker delivers room's messages
// here. With hold, room's messages for m are held back from now until
// Live, so that m's recovery can send history first; hold applies to a
// member already in room too. On error m is not a member.
func (h *Hub) Join(ctx context.Context, name string, m Member, hold bool) error {
	s := h.shard(name)
	s.mu.Lock()
	r, ok := s.rooms[name]
	if !ok {
		r = &room{name: name, members: make(map[Member]*recovery)}
		s.rooms[name] = r
	}
	r.mu.Lock()
	state, was := r.members[m]
	if hold && (state == nil || !state.holding) {
		state = &recovery{holding: true}
	}
	r.members[m] = state
	r.mu.Unlock()
	s.mu.Unlock()

	if !ok {
		h.opts.Metrics.Rooms.Inc()
		h.broker.Want([]string{name}, true)
	}
	if !was {
		h.opts.Metrics.Members.Inc()
	}
	if err := h.broker.Ready(ctx, name); err != nil {
		h.Leave(name, m)
		return err
	}
	return nil
}

// Hold holds back room's messages for m, a member, until Live. It reports
// false when m is not a member of room.
func (h *Hub) Hold(name string, m Member) bool {
	r := h.room(name)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	state, ok := r.members[m]
	if ok && (state == nil || !state.holding) {
		r.members[m] = &recovery{holding: true}
	}
	return ok
}

// Live sends m the messages held back for it since Join, except those at
// or before (epoch, last), which its recovery sent, and makes it live;
// later messages at or before (epoch, last) are dropped too.
func (h *Hub) Live(name string, m Member, epoch string, last uint64) {
	r := h.room(name)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	state, ok := r.members[m]
	if !ok || state == nil || !state.holding {
		return
	}
	held := state.held
	*state = recovery{epoch: epoch, last: last}
	for _, msg := range held {
		if !state.skip(msg) {
			m.Send(EncodeMessage(msg), msg.Published)
		}
	}
	if epoch == "" {
		r.members[m] = nil
	}
}

// Leave removes m from room and reports whether it was a member.
func (h *Hub) Leave(name string, m Member) bool {
	s := h.shard(name)
	s.mu.Lock()
	r := s.rooms[name]
	was, last := false, false
	if r != nil {
		r.mu.Lock()
		_, was = r.members[m]
		delete(r.members, m)
		last = was && len(r.members) == 0
		r.mu.Unlock()
	}
	if last {
		delete(s.rooms, name)
	}
	s.mu.Unlock()

	if was {
		h.opts.Metrics.Members.Dec()
	}
	if last {
		h.opts.Metrics.Rooms.Dec()
		h.broker.Want([]string{name}, false)
	}
	return was
}

// Members returns the number of members of room here.
func (h *Hub) Members(name string) int {
	r := h.room(name)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members)
}

// Deliver hands msg to every member of its room here, in offset order. A
// message that skips offsets holds the room back while the missing ones
// are read from history. It is the broker's handler.
func (h *Hub) Deliver(msg broker.Message) {
	r := h.room(msg.Room)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h.deliverLocked(r, msg)
}

// Resubscribed repairs room after the broker's subscription was
// re-established: messages published meanwhile are read from history.
func (h *Hub) Resubscribed(name string) {
	r := h.room(name)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.repairing || !r.seen || r.epoch == "" {
		return
	}
	r.repairing = true
	h.repair(r, r.epoch, r.last)
}

// gapLocked starts a repair of r from (epoch, last), holding msg back.
// Caller must hold r.mu.
func (h *Hub) gapLocked(r *room, msg broker.Message, kind, epoch string, last uint64) {
	h.opts.Metrics.Gaps.WithLabelValues(kind).Inc()
	r.repairing = true
	r.held = append(r.held, msg)
	h.repair(r, epoch, last)
}

// deliverLocked delivers msg, drops a duplicate, or starts a repair.
// Caller must hold r.mu.
func (h *Hub) deliverLocked(r *room, msg broker.Message) {
	switch {
	case r.repairing:
		if len(r.held) >= MaxHeld {
			h.resyncLocked(r)
			r.held = r.held[:0]
		}
		r.held = append(r.held, msg)
		return
	case r.seen && msg.Epoch == r.epoch && msg.Offset <= r.last:
		return
	case r.seen && msg.Epoch == r.epoch && msg.Offset > r.last+1:
		h.gapLocked(r, msg, "offset", r.epoch, r.last)
		return
	case r.seen && msg.Epoch != r.epoch:
		if r.epoch != "" {
			h.resyncLocked(r) // the old epoch's tail may be lost
		}
		if msg.Offset > 1 && msg.Epoch != r.lost {
			r.epoch, r.last = msg.Epoch, 0
			h.gapLocked(r, msg, "epoch", msg.Epoch, 0)
			return
		}
	}
	r.seen = true
	r.epoch, r.last = msg.Epoch, msg.Offset
	if len(r.members) == 0 {
		return
	}
	frame := EncodeMessage(msg)
	for m, state := range r.members {
		switch {
		case state == nil:
		case state.holding && len(state.held) >= MaxHeld:
			m.Close(protocol.CloseSlowConsumer)
			continue
		case state.holding:
			state.held = append(state.held, msg)
			continue
		case state.skip(msg):
			continue
		default:
			r.members[m] = nil // past its recovery: live
		}
		m.Send(frame, msg.Published)
	}
	h.opts.Metrics.Deliveries.Add(float64(len(r.members)))
}

// resyncLocked tells r's members that messages of r may have been lost
// here, and forgets r's position. Caller must hold r.mu.
func (h *Hub) resyncLocked(r *room) {
	r.epoch, r.last = "", 0
	frame, _ := json.Marshal(protocol.Frame{Type: protocol.TypeResync, Room: r.name})
	for m := range r.members {
		m.Send(frame, time.Time{})
	}
}

// repair reads r's history after (epoch, last) on its own goroutine, then
// delivers it and the messages held meanwhile. Caller must hold r.mu and
// have set r.repairing.
func (h *Hub) repair(r *room, epoch string, last uint64) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(h.ctx, RepairTimeout)
		msgs, err := h.broker.History(ctx, r.name, epoch, last)
		cancel()

		r.mu.Lock()
		defer r.mu.Unlock()
		held := r.held
		r.held, r.repairing = nil, false
		if err != nil {
			h.opts.Metrics.Repairs.WithLabelValues("resync").Inc()
			h.resyncLocked(r)
			r.lost = epoch
		} else {
			h.opts.Metrics.Repairs.WithLabelValues("repaired").Inc()
		}
		for _, m := range append(msgs, held...) {
			h.deliverLocked(r, m)
		}
	}()
}

// EncodeMessage returns the message push of msg.
func EncodeMessage(msg broker.Message) []byte {
	b, _ := json.Marshal(protocol.Frame{
		Type: protocol.TypeMessage, Room: msg.Room, Data: msg.Data,
		Epoch: msg.Epoch, Offset: msg.Offset,
	})
	return b
}
