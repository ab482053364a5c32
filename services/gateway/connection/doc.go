// Package connection serves one WebSocket of the gateway: it authenticates
// the client, reads and answers its requests, and writes what the hub and
// the replies queue for it.
//
// Roles:
//   - Conn: one WebSocket. Its reader runs on the goroutine that calls
//     Serve; its writer is a second goroutine; a protocol ping, while one
//     is in flight, is a third, short-lived one.
//   - Config: the limits and timings every connection shares.
//   - Deps: the hub, broker and authenticator a connection talks to.
//
// INVARIANTS (every change must keep them):
//   - Always read every socket: the reader never waits on the writer, and
//     a request is answered by queueing, never by writing.
//   - Never block fan-out on one client: Send only appends to a queue
//     bounded in bytes; a client whose queue overflows is closed with the
//     slow-consumer code, and nobody else waits for it.
//   - Every blocking call takes a ctx: requests to auth and the broker run
//     under the connection's context with a timeout, writes under a write
//     timeout.
//
// Concurrency: Send, Close, AccessRevoked and SessionRevoked are safe for
// concurrent use and never block. Requests of one connection are handled
// one at a time, in order, on the reader. Lock order: mu, then qmu.
package connection
