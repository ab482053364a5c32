// Command cache is one replica of the Switchboard cache service: named
// bounded caches served over gRPC (switchboard.cache.v1), with Prometheus
// metrics and a health probe over HTTP.
//
// Replicas know nothing of each other. Clients spread keys over them
// (libs/cacheclient, by rendezvous hashing), so adding a replica moves about
// 1/N of the keys and losing one loses only its share.
//
// # Roles
//
//   - Config: every setting, read once from CACHE_* variables; a bad value
//     stops start-up with a message naming the variable.
//   - cache: one named store (libs/store, string keys, []byte values) and the
//     hub of its watchers.
//   - hub: the watchers of one cache, fed by the store's OnEvent hook.
//   - watcher: one Watch stream's bounded buffer of events.
//   - api: the gRPC boundary; the only place that turns problems into status
//     codes.
//   - service: the caches, the gRPC server and the HTTP server of /metrics
//     and /healthz, started and stopped together.
//
// # Caches
//
// CACHE_CACHES lists the caches, comma-separated, each as
// name:policy:max_entries:default_ttl:max_bytes, for example
// "users:lru:200:5m:2MiB". policy is lru, lfu, fifo or tinylfu; a TTL of 0
// means entries without their own TTL never expire; a limit of 0 means none,
// but one of the two limits is required. The default is the caches of the
// system this service replaces: conversations lru 500 entries 10m 8MiB,
// users lru 200 entries 5m 2MiB, messages fifo 2000 entries 30m 16MiB.
//
// # Status codes
//
//   - INVALID_ARGUMENT: an empty key or cache name; a key, value or batch
//     over its limit; a negative TTL or one over CACHE_MAX_TTL; an entry
//     (key plus value plus the store's fixed overhead) larger than the
//     cache's byte limit. The last is INVALID_ARGUMENT and not
//     FAILED_PRECONDITION because no change of the cache's state would let
//     the same request succeed: the client must send less.
//   - NOT_FOUND: a cache name that is not configured.
//   - RESOURCE_EXHAUSTED: CACHE_MAX_WATCHERS streams already open, or a
//     message over CACHE_MAX_REQUEST_BYTES (refused by gRPC itself).
//   - DEADLINE_EXCEEDED: a unary call that worked longer than
//     CACHE_MAX_CALL_TIME, the bound of calls whose client set none sooner.
//   - UNAVAILABLE: a Watch stream ended because the replica is stopping.
//   - INTERNAL: anything else, logged here and answered without detail.
//
// A batch is checked as a whole before any entry is stored: one bad entry
// changes nothing, and the message names its index ("entries[3]: ...").
//
// # Watch
//
// Each Watch stream has a buffer of CACHE_WATCH_BUFFER events, filled by the
// store's event hook without ever blocking it. When the buffer is full the
// event is dropped and counted; the count travels in the dropped field of
// the next event the watcher receives, or, when no event follows, in an
// event of kind EVENT_KIND_UNSPECIFIED sent as soon as the buffer is
// drained. A stream ends when the client cancels it or the replica stops.
//
// # Concurrency
//
// The stores are safe for concurrent use; the api holds no lock of its own.
// A hub's lock is taken for reading on every event and for writing only
// when a watcher comes or goes; a watcher's lock guards a send that never
// waits. Lock order: hub.mu, then watcher.mu. The store calls the hook after
// releasing its own locks, so no store lock is ever held with these.
//
// # What it touches
//
// Memory only: nothing is persisted and a restart starts empty. It listens
// on CACHE_GRPC_ADDR and CACHE_HTTP_ADDR and dials nothing.
package main
