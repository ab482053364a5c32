// Package httpapi serves the browser side of auth over HTTP, since
// browsers cannot speak gRPC:
//
//	POST /v1/token                 grant_type=password (email or username,
//	                               password) or grant_type=refresh_token
//	                               (refresh_token); form or JSON body;
//	                               answers a token pair as JSON
//	POST /v1/logout                refresh_token in the body, or an access
//	                               token as "Authorization: Bearer";
//	                               all_sessions=true ends every session
//	GET  /.well-known/jwks.json    the public keys (also /v1/jwks)
//
// Errors follow RFC 6749 section 5.2: a JSON body {"error", "error_description"}
// with 400 (invalid_request, invalid_grant, unsupported_grant_type), 429
// with Retry-After, or 503. Descriptions are fixed texts; a token is never
// echoed. Token answers carry Cache-Control: no-store.
//
// CORS: only origins in the configured list get Access-Control-Allow-Origin
// (no wildcard, no credentials mode); preflights from other origins are
// refused with 403. Requests without an Origin (not from a browser) pass.
//
// Rate limiting of the password grant uses the peer's address, unless the
// peer is in a trusted proxy network (AUTH_TRUSTED_PROXIES), in which case
// the nearest address of X-Forwarded-For that is not a trusted proxy.
//
// Glossary:
//   - Handler: the http.Handler of the endpoints above.
//   - origins: the CORS allow-list.
//   - proxies: the trusted reverse proxy networks.
//
// Concurrency: a Handler is safe for concurrent use.
package httpapi
