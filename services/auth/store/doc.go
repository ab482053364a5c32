// Package store keeps users, sessions and conversation access for the auth
// service, behind one interface with two implementations: Redis, for
// replicas that share state, and Memory, for the embedded default.
//
// Glossary:
//   - User: an account with an email and an argon2id password hash.
//   - Session: what a refresh token belongs to; it has an absolute expiry
//     that rotation never extends. Refresh tokens are kept as hashes: the
//     current one, the previous one, and the HistoryLen (16) before those,
//     so that a stolen token presented again is recognised as reuse.
//   - Rotation: trading the current refresh token for the next one. The
//     previous token presented within the grace gets the current token back,
//     sealed so that only its holder can read it; a token from the history
//     presented at any other time revokes the session; a token the session
//     never had is refused and changes nothing.
//   - Sealed token: the one copy of a refresh token the store holds that is
//     not a hash: the current token sealed (AES-GCM) under the previous
//     one, for the replay within the grace. It is dropped when the grace is
//     over (Redis lets the key expire; Memory runs a timer) and never kept
//     when the grace is 0.
//
// Reuse detection is bounded on purpose: a token more than HistoryLen + 1
// rotations old (with the default 15-minute access tokens, about four
// hours of steady refreshing) is no longer recognised, so presenting it is
// refused as unknown instead of revoking the session. Such a token grants
// nothing either way; only the alarm is lost. Keeping every hash for the
// session's life (up to 30 days, about 2,900 rotations) would make each
// session record and each reuse check grow without a small bound.
//   - Access: the set of users who may see a conversation.
//   - Event: a revocation (session or access), published by the store in the
//     same atomic step that made it, so that no revocation goes unannounced.
//     Reset means events may have been missed: drop every cached decision.
//
// Atomicity: every operation is atomic. Redis runs each as one Lua script,
// so many replicas refreshing one token at once see exactly one rotation;
// Memory holds one mutex.
//
// Concurrency: a Store is safe for concurrent use. A Subscription's channel
// is read by one goroutine; it is closed when the subscription ends (Close,
// the store closing, or a subscriber too slow to keep up), after which the
// reader must assume it missed events.
package store
