// Package gateway assembles one gateway replica: the HTTP server with
// `GET /ws`, the event-stream fallback (`GET /sse`, `POST /sse/{id}`),
// `POST /v1/publish`, `/readyz` and `/healthz`; the private metrics
// listener (`/metrics`, `/healthz`); the gRPC PublishService; the hub,
// the broker (Redis when a URL is given, in-process otherwise), the
// authenticator that follows revocations, and the wsconn Poller in whose
// epoll set idle WebSockets wait (created by Serve, closed when it
// returns).
//
// Roles:
//   - Config: every setting of the replica, read by FromEnv.
//   - Gateway: one replica; Serve runs it until its ctx ends, then drains.
//
// Limits applied before a connection is served: the request's headers
// must arrive within the header timeout; one client address (behind the
// trusted proxies, the one X-Forwarded-For names) holds at most
// MaxPerAddress WebSockets and event streams together, past which the
// upgrade is answered 429; an Origin outside the allow-list is answered
// 403 before the upgrade; the replica's and the user's own caps follow
// as close codes once the token is known. PublishService caps a message
// at the inbound limit plus 4 KiB and bounds a call by MaxCallTime.
//
// Shutdown, in order: /readyz answers 503 and /ws refuses new connections;
// open connections are closed with the "restarting" code spread over the
// drain period, so their clients do not reconnect all at once; then the
// HTTP and gRPC servers stop, and the broker and the authenticator close.
// Serve returns within the drain period + the write timeout + 15 s (the
// longest a connection takes to close) + 5 s (the servers' own shutdown
// grace): 40 s with the defaults.
//
// Concurrency: a Gateway's methods are safe for concurrent use; Serve is
// called once.
package gateway
