// Package telemetry holds the gateway's Prometheus metrics, one Metrics
// value per replica, handed to every part that counts something.
//
// Labels are bounded sets chosen by the code (close code, request type,
// result); never a room, a user or a token.
//
// Concurrency: every metric is safe for concurrent use.
package telemetry
