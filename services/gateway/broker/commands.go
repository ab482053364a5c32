package broker

import (
	"context"
	"errors"
	"fmt"
)

// commands are the calls that the Redis and Redis Cluster brokers make in
// the same way: the publish script, history reads, forwards between
// replicas and the record of wanted rooms. Each broker embeds one and
// supplies how a forward is sent and what follows a failed command.
type commands struct {
	// Read-only after construction.
	history RedisHistory
	prefix  string
	send    func(ctx context.Context, channel string, payload []byte) (int64, error)
	failed  func() // after a command failed
	via     string // names the transport in errors

	// Safe on its own.
	subs *subscriptions
}

// Publish runs the publish script: a key seen within the idempotency
// window answers with the original position and publishes nothing. An
// error means the message may or may not have been published.
func (m *commands) Publish(ctx context.Context, room string, data []byte, key string) (string, uint64, error) {
	epoch, off, _, err := m.history.Publish(ctx, PublishArgs{Room: room, Data: data, Key: key})
	if err != nil {
		m.failed()
	}
	return epoch, off, err
}

// History returns room's messages after (epoch, offset), or
// ErrNotRecoverable.
func (m *commands) History(ctx context.Context, room, epoch string, offset uint64) ([]Message, error) {
	msgs, err := m.history.History(ctx, room, epoch, offset)
	if err != nil && !errors.Is(err, ErrNotRecoverable) {
		m.failed()
	}
	return msgs, err
}

// Forward publishes payload on node's channel.
func (m *commands) Forward(ctx context.Context, node string, payload []byte) (bool, error) {
	n, err := m.send(ctx, KeysOf(m.prefix, NodeRoom(node)).Channel, payload)
	if err != nil {
		m.failed()
		return false, fmt.Errorf("forward through %s: %w", m.via, err)
	}
	return n > 0, nil
}

// Want records the wanted rooms; the broker's batch goroutine sends the
// commands.
func (m *commands) Want(rooms []string, want bool) { m.subs.setWant(rooms, want) }

// Ready waits for Redis to acknowledge room's subscription.
func (m *commands) Ready(ctx context.Context, room string) error { return m.subs.ready(ctx, room) }
