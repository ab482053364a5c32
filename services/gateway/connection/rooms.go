package connection

import (
	"slices"
	"time"
)

// roomSet holds a connection's rooms. A connection is in a few rooms
// (MaxRooms at most), so a slice searched in order costs less memory than
// a map, which every idle connection would carry. Once left, the set
// stays empty: a join that finishes after the connection left everything
// must not record its room.
type roomSet struct {
	names []string
	left  bool
}

func (s *roomSet) has(room string) bool { return slices.Contains(s.names, room) }

// add records room; false once the set was left.
func (s *roomSet) add(room string) bool {
	if s.left {
		return false
	}
	if !s.has(room) {
		s.names = append(s.names, room)
	}
	return true
}

// remove forgets room and reports whether it was there.
func (s *roomSet) remove(room string) bool {
	i := slices.Index(s.names, room)
	if i < 0 {
		return false
	}
	s.names = slices.Delete(s.names, i, i+1)
	return true
}

// leaveAll empties the set for good and returns what it held.
func (s *roomSet) leaveAll() []string {
	names := s.names
	s.names, s.left = nil, true
	return names
}

// bucket limits the frames a connection's reader takes: rate a second,
// burst at once. The reader alone uses it, so it needs no lock.
type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token if one is there.
func (b *bucket) allow(rate float64, burst int) bool {
	now := time.Now()
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
