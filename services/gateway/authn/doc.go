// Package authn is the gateway's view of the auth service: it validates
// access tokens, asks whether a user may see a conversation, and follows
// the stream of revocations.
//
// Roles:
//   - Authenticator: the auth gRPC client with a bounded local cache of
//     validations (libs/store), keyed by the SHA-256 of the token.
//   - Identity: who a token belongs to, its session and its expiry.
//   - Watch: the loop that reads WatchRevocations and tells the gateway.
//   - Held: what the replica holds open, rechecked after a break.
//
// The cache holds a validation no longer than the token's own expiry and
// no longer than CacheTTL (the revocation budget). It is used only while
// the revocation stream is connected and registered: auth sends the
// stream's response headers once the watcher is registered, and the cache
// comes into use only after they arrive (a stream that ends without them
// never puts it in use), since a revocation before then would not be
// seen. When the stream breaks, the cache is dropped and every validation
// goes to auth until the stream is back, and the cache is dropped again
// then, since revocations made meanwhile were not seen; a validation auth
// answered before that is not cached afterwards, for the same reason. A
// revoked session's cached validations stop counting at once.
//
// Recheck: when a stream's headers arrive (after a break, and on the first
// stream too, which connections accepted earlier may precede), what the
// replica holds open (Options.Held: the
// sessions of its connections and the conversation rooms of its members)
// is sent to auth's Recheck in pages of MaxRecheck, each call bounded by
// CallTimeout, and every session or access auth reports gone is applied
// as a streamed revocation would be. A failed recheck is retried with
// backoff while the stream lasts; auth being unreachable never closes a
// connection. An auth without Recheck (UNIMPLEMENTED) is logged once per
// stream and not asked again on it.
//
// Tokens never leave this package except to auth: not in errors, not in
// logs.
//
// Concurrency: every method is safe for concurrent use. Watch runs on one
// goroutine of the caller's and returns when its ctx is done; a recheck
// runs on a goroutine of its stream's, waited for before the stream's
// attempt returns, so the callbacks may be called from two goroutines.
package authn
