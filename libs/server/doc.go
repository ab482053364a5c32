// Package server is the thin plumbing every service binary shares: a main
// that turns SIGINT and SIGTERM into a cancelled context, gRPC servers with
// health, reflection, metrics and panic recovery, HTTP servers that drain on
// shutdown, the private listener that serves /metrics apart from the public
// port (ServeMetrics), the service credential that guards trusted RPCs, the
// client address behind trusted reverse proxies (TrustedProxies), and the
// probes behind each binary's `healthcheck` subcommand.
//
// Serve functions block until their context is cancelled, then stop within
// the grace period they are given, and return only once every goroutine they
// started has ended.
package server
