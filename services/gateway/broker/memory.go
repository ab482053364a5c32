package broker

import (
	"context"
	"sync"
	"time"

	"switchboard/libs/store"
)

// MemoryRooms bounds the rooms whose positions the in-process broker
// keeps; the least recently published room beyond it is forgotten and
// starts a new epoch at its next publish, as a Redis room past its
// retention does.
const MemoryRooms = 1 << 20

// Memory is the broker of a single replica: publishes go straight to the
// handler. Epochs are chosen at random, so a restart starts new ones.
type Memory struct {
	// Read-only after construction.
	handler Handler

	// Guarded by mu.
	mu        sync.Mutex
	positions *store.Store[string, position]
	closed    bool
}

type position struct {
	epoch  string
	offset uint64
}

// NewMemory returns an in-process broker delivering to h.
func NewMemory(h Handler) *Memory {
	positions, err := store.New(store.Options[string, position]{
		Policy: store.LRU, MaxEntries: MemoryRooms, Shards: 1, ReclaimInterval: -1,
	})
	if err != nil {
		panic("broker: positions store: " + err.Error()) // the options are constant
	}
	return &Memory{handler: h, positions: positions}
}

// Publish delivers data to the handler synchronously, under the lock, so
// that offsets reach the handler in order.
func (m *Memory) Publish(ctx context.Context, room string, data []byte) (string, uint64, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", 0, ErrClosed
	}
	p, ok := m.positions.Get(room)
	if !ok {
		p.epoch = newEpoch()
	}
	p.offset++
	m.positions.Set(room, p)
	m.handler(Message{Room: room, Data: data, Epoch: p.epoch, Offset: p.offset, Published: time.Now()})
	return p.epoch, p.offset, nil
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
		m.positions.Close()
	}
	return nil
}
