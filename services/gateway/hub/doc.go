// Package hub keeps a replica's rooms and members and hands every message
// from the broker to the members of its room.
//
// Roles:
//   - Hub: rooms (sharded maps of members), the registry of connections per
//     user, and the limits on connections per user and per replica.
//   - Member: what the hub needs from a connection: a non-blocking Send,
//     the revocation callbacks and its session.
//   - Membership: a user's connection in a room; Sessions and Memberships
//     list what this replica holds, for a recheck with auth.
//
// Order and gaps: each room keeps the position last delivered here; a
// message that skips offsets, opens an epoch past its start, or follows a
// re-established subscription holds the room back while the missing
// messages are read from history (or a resync push is sent). A member
// recovering from a position has its live messages held until Live.
//
// The hub tells the broker to want a room when its first member joins and
// to stop when its last member leaves, so a replica receives only the rooms
// it has members of.
//
// Concurrency: every method is safe for concurrent use. Deliver encodes a
// message once and calls Member.Send under a shard's read lock; Send must
// never block. Lock order: a shard's mu, then a room's mu; users.mu, then
// nothing. Member callbacks are called with no hub lock held, except Send.
package hub
