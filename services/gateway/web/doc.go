// Package web serves the gateway's browser assets: the client module
// switchboard.js (no build step), the demo inbox page that uses it, and
// config.json telling the page where the auth service and the gateway are.
//
// Roles:
//   - Handler: an http.Handler over the embedded static files, meant for
//     the gateway's mux at "/".
//   - Options: the public URLs written into config.json and the page's
//     Content-Security-Policy.
//
// Files are embedded at build time; each response carries a strong ETag
// (a hash of the content), Cache-Control: no-cache, and headers that keep
// the page from being framed or sniffed. Paths other than the embedded
// files answer 404; there are no directory listings.
//
// Concurrency: a Handler is read-only after New and safe for concurrent
// use.
package web
