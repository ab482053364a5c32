// Package grpcload drives a bounded load of unary gRPC calls at a service on
// loopback and summarises it: throughput, latency percentiles and errors by
// status code. The load commands of the services (authload, cacheload) are
// thin: they parse flags, prepare their calls and hand one Op to Run.
//
// Glossary:
//   - Op: one call of the load; it returns the call's error, and Run times it.
//   - worker: one goroutine calling Op in a loop; Options.Concurrency of them.
//   - Report: the JSON summary Run returns.
//
// Bounds: a run stops at Options.Requests calls or after Options.Duration,
// whichever comes first, and both are capped (MaxRequests, MaxDuration).
// CheckLoopback refuses any target that is not on a loopback address.
//
// Concurrency: Run calls Op from Options.Concurrency goroutines at once, and
// returns only when all of them have ended.
package grpcload
