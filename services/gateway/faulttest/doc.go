// Package faulttest runs the gateway's fault tests: gateway replicas as
// processes of the binary built from this repository, a real redis-server
// (libs/redistest) and a fake auth service over gRPC, all on loopback. A
// publisher counts what the gateway acknowledged, receivers (the Go
// client, which drops repeated offsets) count what arrived, and each
// scenario reports acknowledged-but-lost, duplicates, order violations and
// recovery time as a log line and a JSON summary.
//
// Roles:
//   - stack: Redis, the fake auth and the replicas of one test.
//   - publisher: publishes numbered messages through POST /v1/publish,
//     retrying each with its idempotency key until acknowledged.
//   - receiver: one gatewayclient.Client in the room, recording every
//     message and every recovery it reports.
//
// Concurrency: each test owns its stack; tests run one after another.
package faulttest
