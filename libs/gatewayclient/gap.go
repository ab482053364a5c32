package gatewayclient

import "switchboard/libs/gatewayclient/protocol"

// maxGapOffsets bounds the offsets a gap remembers; a gap that sees more
// is reported not recovered.
const maxGapOffsets = 10_000

// gap is a room's span after the position a resync push named, from the
// push until the latest rejoin for it answers. Its messages may come after
// later live ones, so offsets past since are told apart one by one.
type gap struct {
	since    protocol.Position
	seen     map[uint64]struct{} // offsets past since delivered so far
	overflow bool                // an offset came when seen was full
	join     int                 // number of the latest rejoin
}

// covers reports whether pos lies past the gap's start.
func (g *gap) covers(pos protocol.Position) bool {
	return pos.Epoch == g.since.Epoch && pos.Offset > g.since.Offset
}

// add records off and reports whether it is recorded now for the first
// time; false means seen already, or not recorded because seen is full.
func (g *gap) add(off uint64) bool {
	if _, ok := g.seen[off]; ok {
		return false
	}
	if len(g.seen) >= maxGapOffsets {
		g.overflow = true
		return false
	}
	g.seen[off] = struct{}{}
	return true
}

// openGap starts a gap in room at its current position, unless one is
// open already (the earlier start covers both) or the room has none.
func (c *Client) openGap(room string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.last[room]
	if _, open := c.gaps[room]; open || !ok {
		return
	}
	if _, want := c.rooms[room]; want {
		c.gaps[room] = &gap{since: p, seen: make(map[uint64]struct{})}
	}
}

// startRejoin returns the position to rejoin room from (an open gap's
// start, else the last one seen), whether there is one, and the number of
// this rejoin for endRejoin (0: no gap).
func (c *Client) startRejoin(room string) (protocol.Position, bool, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.gaps[room]; g != nil {
		g.join++
		return g.since, true, g.join
	}
	p, ok := c.last[room]
	return p, ok, 0
}

// endRejoin closes room's gap when join is its latest rejoin. It reports
// whether the gap stayed within its bound and whether this rejoin is the
// one to report the recovery.
func (c *Client) endRejoin(room string, join int) (complete, latest bool) {
	if join == 0 {
		return true, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gaps[room]
	if g == nil || g.join != join {
		return true, false
	}
	delete(c.gaps, room)
	return !g.overflow, true
}

// latestRejoin reports whether join, a rejoin that did not complete, is
// the one to report room's recovery: room is still wanted (a refused or
// left room is reported by Left, if at all), and join is a rejoin without
// a gap or the latest for a gap still open.
func (c *Client) latestRejoin(room string, join int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.rooms[room] {
		return false
	}
	g := c.gaps[room]
	return join == 0 || g != nil && g.join == join
}
