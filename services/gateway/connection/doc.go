// Package connection serves one WebSocket of the gateway: it authenticates
// the client, reads and answers its requests, and writes what the hub and
// the replies queue for it.
//
// Roles:
//   - Conn: one WebSocket (or event stream). Its reader runs in bursts:
//     a goroutine reads and handles what the client sent, then parks the
//     connection in its Transport and ends; the transport starts the next
//     burst when the client sends more. A flusher goroutine runs only
//     while there is something to write; protocol pings, the deadline to
//     authenticate and the token's expiry are timers. An idle connection
//     holds no goroutine.
//   - Transport: what carries the frames: a wsconn.Conn, or the
//     event-stream fallback's sse.Stream, whose reader waits in a
//     goroutine instead of parking.
//   - Config: the limits and timings every connection shares.
//   - Deps: the hub, broker and authenticator a connection talks to.
//
// INVARIANTS (every change must keep them):
//   - Always read every socket: the reader never waits on the flusher, and
//     a request is answered by queueing, never by writing. The reader
//     pauses only while it handles one request, for at most the request
//     timeout, which is shorter than the ping timeout.
//   - Never block fan-out on one client: Send only appends to a queue
//     bounded in bytes; a client whose queue overflows is closed with the
//     slow-consumer code, and nobody else waits for it.
//   - Every blocking call takes a ctx or is otherwise bounded: requests to
//     auth and the broker run under a ctx with the request timeout; a
//     write runs under the transport's write timeout, past which the
//     connection is cut as a slow consumer.
//
// Recovery: a join naming a position makes the connection a member whose
// live messages the hub holds back, sends the room's history after the
// position, then lets the hub release the held messages minus those the
// history covered, and only then replies, with recovered true or false.
//
// Revocation during a join: a join records its room as in flight before
// auth is asked, and AccessRevoked marks it when the room is revoked
// before the connection is recorded as a member (auth may have said yes
// just before the revocation). A marked join does not stand: it is
// answered forbidden, after a left push with reason access_revoked when
// the hub had made the connection a member already (live messages may
// have reached it), and the connection leaves the room in the hub. The
// same answer follows a revocation during the join's recovery.
//
// Concurrency: Send, Close, AccessRevoked and SessionRevoked are safe for
// concurrent use and never block. Requests of one connection are handled
// one at a time, in order, on the reader. mu and qmu are never held
// together.
package connection
