// Package app wires the auth service together: configuration from the
// environment, the store (Redis or memory), keys, the authority, the gRPC
// server, the public HTTP server and the private one of /metrics. main.go
// calls it; tests and benchmarks start a whole service with Start.
//
// Glossary:
//   - Config: every setting, read by Load from AUTH_* variables.
//   - Service: one running auth replica with its listeners.
//   - embedded default: no Redis URL; an in-memory store, keys generated
//     at start, a dev service credential and a demo user (DemoEmail,
//     DemoPassword) allowed into conversation DemoConversation. With Redis,
//     AUTH_DEMO adds the same demo user and conversation to it.
//
// Concurrency: Start returns a Service whose goroutines end when its
// context is cancelled; Wait returns once they have.
package app
