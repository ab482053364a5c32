// Package cacheclient is the Go client of the Switchboard cache service. It
// spreads keys over several cache replicas, each a services/cache process
// that knows nothing of the others.
//
// # Roles
//
//   - Client: one gRPC connection per replica, and the hashing that picks a
//     key's replica.
//   - replica: one cache service process, named by its address.
//   - owner: the replica a key belongs to, the one with the highest
//     rendezvous score for it (see hash.go).
//
// # Spreading keys
//
// Keys are placed by rendezvous (highest random weight) hashing over the
// replicas' addresses, with a 64-bit xxHash of the key mixed with each
// address. Keys spread evenly; adding an Nth replica moves about 1/N of the
// keys, all to the new replica; removing one moves only its keys. Clients
// must list the same addresses, spelled alike, to agree on owners; the
// order of the list does not matter.
//
// Batch calls are split by owner, sent to all replicas at once (in calls
// of at most Options.MaxBatch keys), and merged back in request order.
//
// # When a replica is down
//
// By default nothing is re-homed: a call for a key whose owner cannot be
// reached fails with that replica's status, UNAVAILABLE for a stopped
// process, wrapped in a *ReplicaError that names it. Keys of the other
// replicas are unaffected, and a batch returns what the live replicas
// answered along with the error. A caller that uses the cache as a cache
// treats the failure as a miss and goes to the source of truth.
//
// Options.Fallover instead sends the call to the key's next replica in
// rendezvous order, so reads and writes go on during the outage. The cost
// is staleness: a replica that returns with its memory intact (a network
// partition, a paused process) still holds the values it had, and the
// writes and deletes made meanwhile went to the fallover replica, so reads
// that go back to it can serve outdated or deleted values until their TTL
// runs out. Use fallover only for caches whose TTL bounds the staleness
// one can accept. Only UNAVAILABLE falls over: after DEADLINE_EXCEEDED the
// owner may have applied a write, and an error with a request (such as
// INVALID_ARGUMENT) would fail anywhere.
//
// # Concurrency
//
// A Client is safe for concurrent use; it holds no lock and nothing
// changes after New. Every call takes a context, which bounds it on every
// replica it reaches.
package cacheclient
