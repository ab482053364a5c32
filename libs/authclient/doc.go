// Package authclient keeps an auth session alive for a Go program: it holds
// the session's token pair, refreshes the access token a margin before it
// expires, and hands the current token to whoever asks.
//
// Glossary:
//   - Session: one logged-in session (a token pair) and its refresher.
//   - margin: how long before the access token's expiry a refresh starts.
//   - refresh: one Refresh RPC; concurrent callers share the one in flight.
//   - Change: what OnChange reports: a new access token, or the end of the
//     session with the reason.
//
// A Session refreshes in the background; a failed refresh is retried with
// exponential backoff and full jitter until it succeeds or the auth service
// refuses the session (UNAUTHENTICATED, INVALID_ARGUMENT), which ends it.
// Token(ctx) returns the current access token, refreshing first if it is
// within the margin; it is the token source of the gateway client.
// Logout ends the session on the server and stops the refresher.
//
// Tokens are never logged and never put in errors.
//
// Concurrency: a Session is safe for concurrent use. OnChange is called
// from the session's notifier goroutine, one call at a time and in order,
// without locks held; it may call Token but should return quickly, and
// must not call Close or Logout, which wait for the refresher and the
// notifier. A slow OnChange never holds up refreshing: tokens that arrive
// while it runs are coalesced, so it is next handed the latest one (never
// an older one after a newer), and the end of the session is always
// reported, last.
package authclient
