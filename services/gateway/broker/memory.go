package broker

import (
	"context"
	"sync"
	"time"
)

// Memory is the broker of a single replica: publishes go straight to the
// handler. Its epoch is chosen at start, so a restart starts a new epoch.
type Memory struct {
	// Read-only after construction.
	handler Handler
	epoch   string

	// Guarded by mu.
	mu      sync.Mutex
	offsets map[string]uint64
	closed  bool
}

// NewMemory returns an in-process broker delivering to h.
func NewMemory(h Handler) *Memory {
	return &Memory{handler: h, epoch: newEpoch(), offsets: make(map[string]uint64)}
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
	m.offsets[room]++
	off := m.offsets[room]
	m.handler(Message{Room: room, Data: data, Epoch: m.epoch, Offset: off, Published: time.Now()})
	return m.epoch, off, nil
}

// Want does nothing: every publish reaches the handler, which knows its
// members.
func (m *Memory) Want([]string, bool) {}

// Ready returns at once.
func (m *Memory) Ready(ctx context.Context, _ string) error { return ctx.Err() }

// Close stops publishing.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}
