// Package wsconn is the gateway's WebSocket (RFC 6455) server side: the
// handshake, the frames, and connections that hold no goroutine and no
// buffer while idle.
//
// A connection that waits for its client's next message is parked: its
// socket sits in the epoll set of a Poller and nothing else of it runs;
// when bytes arrive, the Poller calls the function given to Park on a
// goroutine of its own, which reads what arrived and parks again. Read
// buffers come from a pool for the length of one burst of reading. An
// idle connection therefore costs its Conn, its socket's runtime
// structures and what the caller keeps beside them.
//
// Glossary:
//   - Upgrade: answers the opening handshake of a GET request and takes
//     over its connection. The caller checks the Origin beforehand.
//   - Message: one text or binary message, reassembled from its
//     fragments; ReadMessage returns one at a time and answers the
//     control frames it meets on the way (ping with pong, close with
//     close).
//   - Park: hands the connection to the Poller until it is readable, hung
//     up or closed here; the function then runs once, on a goroutine of
//     its own.
//   - Compression: permessage-deflate without context takeover in either
//     direction (RFC 7692), when the client offers it and Options ask for
//     it; messages from the threshold on are compressed, and compressed
//     messages from the client are inflated up to the read limit.
//
// Limits: a message longer than ReadMessage's limit is refused before its
// payload is read (ErrTooBig); control frames carry at most 125 bytes,
// ReadMessage returns after every 16 in a row (ErrNoMessage, for the
// caller's rate limit) and refuses more than 1,024 inside one message;
// client frames must be masked; reserved bits other than compression's
// are refused; text is not checked for valid UTF-8 (the caller decodes
// JSON, which replaces invalid bytes). Each violation is an error the
// caller answers by closing with a protocol-error code.
//
// Concurrency: one goroutine reads at a time (the one Park started, or
// the caller's); ReadMessage, Buffered, Park and Drain are the reader's.
// WriteText, Ping, Close and CloseNow are safe to call from any
// goroutine, at the same time as the reader; writes are serialised, and
// each is bounded by Options.WriteTimeout (a write fails after between
// half of it and the whole of it: the deadline is moved only when less
// than half is left).
package wsconn
