package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Message is one publish as every replica receives it.
type Message struct {
	Room   string
	Data   []byte // a JSON value, delivered as it is
	Epoch  string
	Offset uint64
	// Published is when the publishing replica sent it, for the
	// publish-to-write latency.
	Published time.Time
}

// Handler receives every message of the rooms a broker is subscribed to.
// It must not block: it runs on the broker's receive goroutine.
type Handler func(Message)

// Broker is the fan-out between replicas.
type Broker interface {
	// Publish assigns the next position in room, appends data to room's
	// history and delivers it to every replica subscribed to room, in one
	// atomic step. A non-empty key already seen within the idempotency
	// window publishes nothing and returns the original position.
	Publish(ctx context.Context, room string, data []byte, key string) (epoch string, offset uint64, err error)
	// History returns room's messages after offset in epoch, in order, or
	// ErrNotRecoverable when the epoch changed or the position is older
	// than room's history keeps.
	History(ctx context.Context, room, epoch string, offset uint64) ([]Message, error)
	// Want records that this replica wants (or no longer wants) the rooms'
	// messages. It does not block; changes are applied in batches.
	Want(rooms []string, want bool)
	// Ready waits until room's subscription is confirmed, so that a publish
	// made after Ready returns reaches this replica.
	Ready(ctx context.Context, room string) error
	// Forward hands payload to the replica named node, whose broker passes
	// it to its ForwardHandler. It reports false when no replica listens
	// under that name. Replicas listen under their own name once they want
	// the room NodeRoom(name).
	Forward(ctx context.Context, node string, payload []byte) (bool, error)
	// Close stops the broker and waits for its goroutines.
	Close() error
}

// ForwardHandler receives the payloads forwarded to this replica. It must
// not block.
type ForwardHandler func(payload []byte)

// NodeRoom is the internal room a replica named node listens on for
// forwarded payloads. Client rooms never look like it.
func NodeRoom(node string) string { return "node:" + node }

// ErrClosed is returned by a closed broker.
var ErrClosed = errors.New("broker closed")

// newEpoch returns a random epoch name.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	_ Broker = (*Memory)(nil)
	_ Broker = (*Redis)(nil)
	_ Broker = (*Cluster)(nil)
)
