// Package broker carries messages between gateway replicas: a publish on
// any replica reaches every replica that has members of the message's room.
//
// Roles:
//   - Broker: publishes a message to a room and tells a Handler about every
//     message of the rooms it is subscribed to.
//   - Message: a room's payload with its position (epoch, offset) in the
//     room's history.
//   - Memory: the in-process broker of the embedded default; one replica.
//   - Redis: one Redis pub/sub channel per room, subscribed only while the
//     replica wants the room; every SUBSCRIBE and UNSUBSCRIBE goes through
//     one pub/sub connection, batched.
//   - Cluster: Redis Cluster sharded pub/sub (SSUBSCRIBE, SPUBLISH); a
//     room's channel lives on the node owning the slot of its {room} tag,
//     and each shard (one pub/sub connection) carries the channels of one
//     hash slot, because go-redis resubscribes a connection's channels in
//     one command and Redis refuses channels of different slots in one
//     SSUBSCRIBE. A moved slot or a lost connection resubscribes the
//     shard's rooms and reports them for gap repair.
//   - Forward: a payload for one replica rather than a room, on the
//     replica's own channel (NodeRoom); the event-stream fallback uses it
//     to reach the replica that holds a connection.
//
// Positions and history: every publish checks its idempotency key,
// increments the room's offset, appends to the room's bounded history and
// publishes in one atomic step (a Lua script on Redis over keys sharing the
// hash tag {room}; RedisHistory holds it for any Redis broker), so the
// publisher learns (epoch, offset) and every receiver sees the same
// position. History answers what followed a position, or
// ErrNotRecoverable. The epoch changes when the room's keys are lost (Redis
// restarted empty, the room idle past its TTL). Publishes that wait for
// Redis at the same time go to it as one pipeline (publishPipeline); a
// publish with none in flight goes at once, alone.
//
// Concurrency: every method of a Broker is safe for concurrent use. The
// Handler is called from one goroutine per broker, in the order messages
// arrive; it must not block.
package broker
