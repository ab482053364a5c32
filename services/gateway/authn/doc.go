// Package authn is the gateway's view of the auth service: it validates
// access tokens, asks whether a user may see a conversation, and follows
// the stream of revocations.
//
// Roles:
//   - Authenticator: the auth gRPC client with a bounded local cache of
//     validations (libs/store), keyed by the SHA-256 of the token.
//   - Identity: who a token belongs to, its session and its expiry.
//   - Watch: the loop that reads WatchRevocations and tells the gateway.
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
// Tokens never leave this package except to auth: not in errors, not in
// logs.
//
// Concurrency: every method is safe for concurrent use. Watch runs on one
// goroutine of the caller's and returns when its ctx is done.
package authn
