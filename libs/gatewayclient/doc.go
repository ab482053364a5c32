// Package gatewayclient is the Go client of the Switchboard gateway. It
// keeps one WebSocket open: it authenticates with a token from a
// TokenSource, reconnects with exponential backoff and full jitter, joins
// its rooms again after every reconnect, refreshes its token in-band before
// it expires, and measures latency and connection quality with the
// application ping.
//
// Quality: every PingInterval the client pings and grades the connection
// by the round trip (excellent under 100 ms, good under 300 ms, poor
// above); a ping with no answer within RequestTimeout grades it poor at
// once, so a dead link never keeps the grade of its last answer, and the
// end of a connection makes it unknown until the next one's first answer.
// OnEvent hears of each change, once (Event.QualityChanged); Latency
// returns the current grade.
//
// Recovery: the client keeps the last position (epoch, offset) seen in
// each room, its user room included, and names it when it joins again
// after a reconnect or a resync push, so that the gateway sends what was
// missed first. The StateConnected event of every connection comes once
// the rooms are joined again and its Recovery says, per room that had a
// position, whether that succeeded; after a resync push an event without
// State says it for the one room. Messages at or before the last position of the same epoch are
// dropped, so a recovery overlapping live messages delivers none twice.
// After a resync push the missed messages can come after later live ones:
// until the rejoin answers, the client tells apart by offset (up to 10,000
// of them) the messages past the position the push followed, so each is
// delivered once; a gap that outgrows that bound is reported not
// recovered.
//
// Glossary: a gap is a room's span after the position a resync push
// followed, open until the latest rejoin for it answers.
//
// Roles:
//   - Client: the connection manager; Run drives it.
//   - TokenSource: where tokens come from (the auth client satisfies it).
//   - Message: a message pushed to one of the client's rooms.
//   - Event: a state change (connecting, connected, disconnected, a room
//     left on the server's initiative, a token refreshed, rooms recovered
//     or not, the connection quality changed).
//
// Concurrency: every method of Client is safe for concurrent use. Handlers
// (OnMessage, OnEvent) are called one at a time, never concurrently;
// messages in the order frames arrive, a recovery's event after the
// messages it sent. They must not block for long and must not wait on a
// request of the same client.
package gatewayclient
