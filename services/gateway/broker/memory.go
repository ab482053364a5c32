package broker

import (
	"context"
	"sync"
	"time"

	"switchboard/libs/store"
)

// MemoryRooms bounds the rooms whose positions and history the in-process
// broker keeps; the least recently published room beyond it is forgotten
// and starts a new epoch at its next publish, as a Redis room past its
// retention does.
const MemoryRooms = 1 << 20

// MemoryHistoryBytes bounds the data of all rooms' history together in the
// in-process broker; past it, least recently published rooms are forgotten.
const MemoryHistoryBytes = 256 << 20

// MemoryKeys bounds the idempotency keys the in-process broker remembers
// at once; past it the least recently used are forgotten early.
const MemoryKeys = 1 << 20

// Memory is the broker of a single replica: publishes go straight to the
// handler. Epochs are chosen at random, so a restart starts new ones. It
// keeps each room's history and the idempotency keys with the bounds of
// HistoryOptions, as the Redis broker does.
type Memory struct {
	// Read-only after construction.
	handler Handler
	opts    HistoryOptions

	// Guarded by mu.
	mu     sync.Mutex
	rooms  *store.Store[string, *roomLog]
	keys   *store.Store[string, position]
	closed bool
}

type position struct {
	epoch  string
	offset uint64
}

// roomLog is one room's position and history, oldest first; history
// offsets are contiguous and end at pos.offset.
type roomLog struct {
	pos     position
	history []Message
	bytes   int64
	touched time.Time
}

// NewMemory returns an in-process broker delivering to h.
func NewMemory(h Handler, opts HistoryOptions) *Memory {
	rooms, err := store.New(store.Options[string, *roomLog]{
		Policy: store.LRU, MaxEntries: MemoryRooms, MaxBytes: MemoryHistoryBytes,
		Size:   func(room string, l *roomLog) int64 { return int64(len(room)) + 64 + l.bytes },
		Shards: 1, ReclaimInterval: -1,
	})
	if err != nil {
		panic("broker: rooms store: " + err.Error()) // the options are constant
	}
	opts = opts.WithDefaults()
	keys, err := store.New(store.Options[string, position]{
		Policy: store.LRU, MaxEntries: MemoryKeys, DefaultTTL: opts.IdempotencyWindow,
		Shards: 1, ReclaimInterval: -1,
	})
	if err != nil {
		panic("broker: keys store: " + err.Error())
	}
	return &Memory{handler: h, opts: opts, rooms: rooms, keys: keys}
}

// Publish delivers data to the handler synchronously, under the lock, so
// that offsets reach the handler in order.
func (m *Memory) Publish(ctx context.Context, room string, data []byte, key string) (string, uint64, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", 0, ErrClosed
	}
	idem := room + "\x00" + key
	if key != "" {
		if p, ok := m.keys.Get(idem); ok {
			return p.epoch, p.offset, nil
		}
	}
	now := time.Now()
	l := m.logLocked(room, now)
	l.pos.offset++
	msg := Message{Room: room, Data: data, Epoch: l.pos.epoch, Offset: l.pos.offset, Published: now}
	l.append(msg, m.opts.For(room), now)
	m.rooms.Set(room, l)
	if key != "" {
		m.keys.Set(idem, l.pos)
	}
	m.handler(msg)
	return l.pos.epoch, l.pos.offset, nil
}

// logLocked returns room's log, a new epoch when it was forgotten or idle
// past its TTL. Caller must hold mu.
func (m *Memory) logLocked(room string, now time.Time) *roomLog {
	l, ok := m.rooms.Get(room)
	if ok && now.Sub(l.touched) < m.opts.For(room).TTL {
		return l
	}
	return &roomLog{pos: position{epoch: newEpoch()}}
}

func (l *roomLog) append(msg Message, r Retention, now time.Time) {
	l.history = append(l.history, msg)
	l.bytes += int64(len(msg.Data))
	l.touched = now
	drop := 0
	for drop < len(l.history)-1 && (len(l.history)-drop > r.Size || now.Sub(l.history[drop].Published) > r.TTL) {
		l.bytes -= int64(len(l.history[drop].Data))
		drop++
	}
	if drop > 0 {
		l.history = append(l.history[:0:0], l.history[drop:]...)
	}
}

// History returns room's messages after (epoch, offset), or
// ErrNotRecoverable.
func (m *Memory) History(ctx context.Context, room, epoch string, offset uint64) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	l, ok := m.rooms.Get(room)
	switch {
	case !ok || l.pos.epoch != epoch || offset > l.pos.offset:
		return nil, ErrNotRecoverable
	case offset == l.pos.offset:
		return nil, nil
	case len(l.history) == 0 || l.history[0].Offset > offset+1:
		return nil, ErrNotRecoverable
	}
	start := offset + 1 - l.history[0].Offset
	return append([]Message(nil), l.history[start:]...), nil
}

// Forward reports false: a single replica has nobody to forward to.
func (m *Memory) Forward(context.Context, string, []byte) (bool, error) { return false, nil }

// Want does nothing: every publish reaches the handler, which knows its
// members.
func (m *Memory) Want([]string, bool) {}

// Ready returns at once.
func (m *Memory) Ready(ctx context.Context, _ string) error { return ctx.Err() }

// Close stops publishing.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.rooms.Close()
		m.keys.Close()
	}
	return nil
}
