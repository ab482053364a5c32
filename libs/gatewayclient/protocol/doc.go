// Package protocol is the wire protocol between a Switchboard gateway and
// its clients: the JSON text frames, the error codes of replies and the
// close-code catalog. The gateway and the Go client both use it, so the two
// cannot drift; docs/protocol.md describes the same protocol for other
// languages.
//
// Roles:
//   - Request: a frame a client sends; each carries an id.
//   - Reply: the server's answer to one request, with a result or an error.
//   - Push: a frame the server sends on its own (message, connected, left,
//     error).
//   - CloseCode: why the server closed a connection, and whether the client
//     should reconnect.
//
// Concurrency: the package holds only types, constants and pure functions;
// everything in it is safe for concurrent use.
package protocol
