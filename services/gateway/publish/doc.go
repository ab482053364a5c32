// Package publish is the gateway's API for trusted backends: the gRPC
// PublishService and `POST /v1/publish`, both guarded by the service
// credential, both publishing to any well-formed room through the broker.
//
// Roles:
//   - Service: validates a publish and hands it to the broker; it serves
//     gRPC (gatewayv1.PublishServiceServer) and HTTP (http.Handler).
//
// Idempotency: a publish whose key was seen within the broker's window is
// not published again and answers with the original (epoch, offset), so a
// backend retries a failed publish with the same key safely.
//
// Concurrency: a Service is safe for concurrent use.
package publish
