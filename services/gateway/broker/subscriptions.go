package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// subscriptions is the bookkeeping every Redis broker keeps of its rooms:
// which it wants, which it asked Redis for, which Redis confirmed, which
// were confirmed before a connection was lost, and who waits for a
// confirmation. It sends no commands itself.
//
// Every method is safe for concurrent use.
type subscriptions struct {
	dirty chan struct{} // capacity 1: a batch is due

	mu        sync.Mutex
	want      map[string]bool          // rooms this replica wants
	sent      map[string]bool          // rooms with a subscription in effect
	confirmed map[string]bool          // rooms Redis acknowledged
	lost      map[string]bool          // confirmed before a connection was lost
	waiters   map[string]chan struct{} // closed when the room is confirmed
	closed    bool
}

func newSubscriptions() *subscriptions {
	return &subscriptions{
		dirty: make(chan struct{}, 1),
		want:  make(map[string]bool), sent: make(map[string]bool),
		confirmed: make(map[string]bool), lost: make(map[string]bool),
		waiters: make(map[string]chan struct{}),
	}
}

// setWant records the wanted rooms and marks a batch due.
func (s *subscriptions) setWant(rooms []string, want bool) {
	s.mu.Lock()
	for _, room := range rooms {
		if want {
			s.want[room] = true
		} else {
			delete(s.want, room)
			delete(s.waiters, room) // its waiters give up on their own ctx
		}
	}
	s.mu.Unlock()
	s.due()
}

// due marks a batch due without blocking.
func (s *subscriptions) due() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// ready waits until room is confirmed.
func (s *subscriptions) ready(ctx context.Context, room string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.confirmed[room] {
		s.mu.Unlock()
		return nil
	}
	ch, ok := s.waiters[room]
	if !ok {
		ch = make(chan struct{})
		s.waiters[room] = ch
	}
	s.mu.Unlock()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for subscription: %w", ctx.Err())
	}
}

// close makes ready refuse from now on.
func (s *subscriptions) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *subscriptions) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// diff returns the rooms to subscribe and unsubscribe, and records them as
// sent.
func (s *subscriptions) diff() (sub, unsub []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for room := range s.want {
		if !s.sent[room] {
			s.sent[room] = true
			sub = append(sub, room)
		}
	}
	for room := range s.sent {
		if !s.want[room] {
			delete(s.sent, room)
			unsub = append(unsub, room)
		}
	}
	return sub, unsub
}

// confirm records Redis's acknowledgement of room, wakes its waiters and
// reports whether room had been confirmed before a lost connection: the
// messages published meanwhile did not arrive.
func (s *subscriptions) confirm(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirmed[room] = true
	again := s.lost[room]
	delete(s.lost, room)
	if ch, ok := s.waiters[room]; ok {
		close(ch)
		delete(s.waiters, room)
	}
	return again && !strings.HasPrefix(room, NodeRoom(""))
}

// unconfirm records that room is no longer subscribed, on purpose.
func (s *subscriptions) unconfirm(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.confirmed, room)
	delete(s.lost, room)
}

// lose records that the confirmed rooms among rooms (every confirmed room
// when rooms is nil) lost their connection.
func (s *subscriptions) lose(rooms map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for room := range s.confirmed {
		if rooms == nil || rooms[room] {
			s.lost[room] = true
			delete(s.confirmed, room)
		}
	}
}

// resend forgets that room was sent, so that the next batch subscribes it
// again if it is still wanted.
func (s *subscriptions) resend(room string) {
	s.mu.Lock()
	delete(s.sent, room)
	s.mu.Unlock()
	s.due()
}
