// Package cacheclient is the Go client of the Switchboard cache service. It
// spreads keys over several cache replicas, each a services/cache process
// that knows nothing of the others.
//
// # Roles
//
//   - Client: one gRPC connection per replica, and the hashing that picks a
//     key's replica.
//   - replica: one cache service process, named by its address.
//   - set: the replicas a client hashes over, a fixed list or what a DNS
//     name resolves to (see ring.go).
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
// order of the list does not matter. A client of a DNS name (see
// Discovery) builds its list from the name's answer.
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
// treats the failure as a miss and goes to the source of truth. A client
// of a DNS name re-homes the replica's keys once the name stops answering
// with it (see Discovery); Docker's DNS drops a stopped container, and a
// headless Service a pod that is not ready.
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
// # Discovery
//
// New([]string{"dns:///cache:7300"}, opts) follows a DNS name instead of
// a fixed list: the name's every address, with the port, is a replica, as
// Docker's DNS answers a service scaled with docker compose up --scale, and
// as a Kubernetes headless Service answers with its ready pods. The name
// is resolved once in New, then every Options.ResolveEvery (10 s by
// default), and sooner, at most once a second, after a call finds a
// replica UNAVAILABLE or finds no replica. A resolution is bounded by 5 s.
//
// When the answer changes, the client rehashes over the new set: a
// replica that appeared joins, one that is gone is dropped, and the
// connections of those that stay are kept. Rendezvous hashing moves only
// the keys of the replica that changed: a new replica takes about 1/N of
// the keys, from every other replica, and starts with none of them cached;
// the keys of a dropped replica go to their next replica, where they
// miss. No other key changes owner. A dropped replica's connection is
// closed at the next resolution, so calls already sent to it finish.
//
// A replica that leaves the answer and comes back with its memory intact
// (a pod that failed its readiness probe for a while) still holds the values it had: the writes and deletes made meanwhile
// went to the keys' next replica, so reads can serve outdated or deleted
// values until their TTL runs out, the cost of Fallover. Clients of one
// name converge on the same set within a period of each other; until then
// they may disagree on the owners of the moved keys, at the same cost.
//
// A replica's identity is its IP address, so a replica that comes back
// with a new address counts as a new one; its memory is empty after a
// restart anyway. A name that answers with both IPv4 and IPv6 addresses of
// each replica counts every replica twice, which still places keys
// consistently; Options.LookupHost can keep one family.
//
// A resolution that fails, or answers no address, keeps the last set: an
// outage of DNS does not empty the cache, and the set changes only on an
// answer. If the name has never resolved (the replicas are not up yet),
// New still returns a client, whose calls fail with UNAVAILABLE, naming
// the lookup's error, until a resolution succeeds; the cache stays an
// optional dependency at start. A failure is logged once, as a warning,
// until a resolution succeeds again.
//
// # Concurrency
//
// A Client is safe for concurrent use and takes no lock on a call: the
// set is swapped whole, and a call hashes all its keys, fallovers
// included, over the set it found when it began. With a name, one
// goroutine resolves it; Close stops it and waits for it. Every call takes
// a context, which bounds it on every replica it reaches.
package cacheclient
