// Package authority is the auth service's logic, below its gRPC and HTTP
// APIs: logging in, issuing, validating, refreshing and ending sessions,
// conversation access, the cached lookup, and the fan-out of revocations.
//
// Glossary:
//   - Authority: the one object the APIs call; it owns the caches and the
//     revocation follower.
//   - Pair: an access token and a refresh token of one session.
//   - Identity: what a valid access token says (user, session, expiry).
//   - follower: the goroutine that reads the store's revocation events,
//     drops cache entries and hands events to watchers.
//   - Watcher: one follower of revocations (a WatchRevocations stream).
//   - limiter: login attempts per account (email) and per address.
//
// # Cached lookup and the revocation budget
//
// Validate keeps three bounded caches (libs/store):
//
//   - tokens: key SHA-256(issuer, audience, token), value the verified
//     claims; kept until the token's own exp and never longer, and checked
//     against exp on every hit. Only successes are cached.
//   - sessions: key session id, value alive (with its user) or revoked;
//     kept at most the revocation budget and never past the session's end.
//     A store error is never cached.
//   - decisions: key (user, conversation), value allowed; only "allowed"
//     is cached, at most the revocation budget, so a grant takes effect at
//     once and a revocation is the only thing a cache can delay.
//
// Every revocation is published by the store in the same atomic step that
// makes it (Redis pub/sub between replicas; in-process with the memory
// store). The follower drops the entries it names at once, on every
// replica, and passes the event to every watcher. Entries filled from a
// read that raced a revocation are not stored: fills and invalidations are
// ordered by a generation counter under one lock.
//
// The revocation budget (AUTH_REVOCATION_BUDGET, default 5s) is therefore
// not the usual delay, which is the pub/sub latency, but the bound when an
// event is lost without the subscription noticing. When the subscription
// does notice (it ends, or Redis reconnects), the follower clears every
// cache and ends every watcher, whose gateway then drops its own cache.
//
// # Concurrency
//
// An Authority is safe for concurrent use. Hits take no lock besides the
// cache's shard lock. fillMu orders cache fills against invalidations; mu
// guards the watcher set. Lock order: fillMu before a cache's own locks;
// mu is never held with fillMu.
package authority
