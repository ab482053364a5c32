// Package grpcapi serves auth.v1.AuthService over gRPC on top of an
// authority.Authority.
//
// Glossary:
//   - Server: the AuthServiceServer; it validates nothing itself beyond
//     message shape, and maps authority errors to status codes.
//   - trusted call: IssueSession, RevokeSessions, CreateUser, GrantAccess,
//     RevokeAccess, ListMembers, Authorize, ListConversations,
//     WatchRevocations and Recheck; the interceptors from
//     server.Credential.Require refuse them without the service credential
//     (Trusted names them).
//
// Status messages are fixed texts chosen by the authority; internal errors
// and tokens never reach a client or a log line from here.
//
// Limits: at most Options.MaxWatchers WatchRevocations streams are open at
// once (RESOURCE_EXHAUSTED past it); a Recheck takes at most
// authority.MaxRecheck session ids and as many accesses; message size and the time a unary call
// may work are bounded by the server.GRPC the Server is registered on.
//
// Concurrency: a Server is safe for concurrent use; each WatchRevocations
// stream owns one authority.Watcher.
package grpcapi
