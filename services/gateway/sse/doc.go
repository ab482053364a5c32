// Package sse is the gateway's fallback transport for browsers that cannot
// keep a WebSocket open: the server's frames go down a server-sent-event
// stream (GET /sse), and each client request comes up as one POST to
// /sse/<connection>. A connection served this way behaves as a WebSocket
// one: same frames, same limits, same close codes.
//
// Wire format: every frame is one event whose data lines hold the frame's
// JSON; the end of the connection is an event named "close" whose data is
// {"code", "reason"} from the close-code catalog. Comment lines (": ping")
// keep proxies from timing the stream out and find dead peers.
//
// Roles:
//   - Stream: one event stream; it satisfies connection.Transport.
//   - Registry: the streams of a replica by connection id, for the POSTs.
//
// Concurrency: Stream's methods are safe for concurrent use; writes are
// serialized. ReadMessage is called by one goroutine at a time. A Stream lives
// as long as the GET request that carries it.
package sse
