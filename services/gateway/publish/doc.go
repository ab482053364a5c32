// Package publish is the gateway's API for trusted backends: the gRPC
// PublishService and `POST /v1/publish`, both guarded by the service
// credential, both publishing to any well-formed room through the broker.
//
// Roles:
//   - Service: validates a publish and hands it to the broker; it serves
//     gRPC (gatewayv1.PublishServiceServer) and HTTP (http.Handler).
//
// Idempotency keys are accepted and checked for length, but not yet
// honoured: a retried publish is delivered twice (see issue 5).
//
// Concurrency: a Service is safe for concurrent use.
package publish
