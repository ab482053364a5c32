// Package store is a bounded, concurrent key-value store: the cache behind
// Switchboard's cache service and the in-process caches of auth and the
// gateway.
//
// A Store holds at most MaxEntries entries and at most MaxBytes bytes at
// the same time; each entry is charged Size(key, value) + EntryOverhead
// bytes. Past either limit it evicts by its policy, in O(1) amortised time
// per operation: no sort and no scan. An entry may carry a time to live;
// an expired entry is never returned, and a background reclaimer frees
// expired entries with bounded work per tick.
//
// # Glossary
//
//   - Store: the public handle; hashes a key to its shard.
//   - shard: one lock's share of the store, with its own index, policy,
//     expiry wheel, counters and share of each limit.
//   - index: a shard's open-addressing hash table of entries, read
//     without a lock.
//   - policy: the eviction rule of a shard: LRU, LFU, FIFO or TinyLFU.
//   - victim: the entry the policy evicts next.
//   - window, probation, protected: TinyLFU's three LRU regions.
//   - candidate: the entry TinyLFU moved out of the window last, which
//     must beat the victim's frequency to stay.
//   - sketch: TinyLFU's count-min estimate of recent key frequency, aged
//     by halving every counter periodically.
//   - hill climber: TinyLFU's tuner of the window's share of the entries.
//   - wheel: a shard's hierarchical timing wheel of entries with a TTL.
//   - read buffer: a shard's lossy rings, one per stripe of goroutines,
//     of TinyLFU hits not yet applied to the policy.
//   - reclaimer: the goroutine that advances the wheels once per
//     ReclaimInterval and expires at most ReclaimBudget due entries per
//     shard per tick.
//
// # Policies
//
// LRU evicts the entry least recently read or set. LFU evicts the entry
// read or set the fewest times since it was added, the least recently
// used of those on a tie; an entry's count is forgotten when it leaves,
// and the entry being added is never its own victim (the rule chooses
// among the entries present before it, so a newcomer is not evicted at
// once for its count of 1).
// FIFO evicts the entry added first; reads and overwrites do not move an
// entry. TinyLFU (the default) is W-TinyLFU: a small LRU window admits new
// entries, and an entry leaving the window enters the segmented-LRU main
// region only if the sketch says it is used more often than main's victim;
// the window's share adapts by hill climbing on the hit ratio.
//
// # Sharding and exactness
//
// With Shards == 1, LRU, LFU and FIFO are exact: the store evicts
// precisely the entry the textbook rule names, and the limits are the
// store's limits. TinyLFU is approximate by design at any shard count (a
// frequency sketch, and a read buffer that may drop hits; see below).
// With n > 1 shards a key lives in the shard chosen by its hash, each
// shard applies the policy to its own keys only, and each shard has
// 1/n of each limit (the shares add up to the limit). So the global
// bounds still hold at every moment, but the victim is the policy's
// choice among the keys of one shard, not of the whole store: LRU evicts
// the least recently used entry of the shard that needs room, which may
// be younger than the globally oldest one; an entry larger than a shard's
// byte share is refused with ErrTooLarge even when it would fit the whole
// limit. The default shard count is 8 per GOMAXPROCS, lowered so each
// shard keeps at least 1024 entries and 1 MiB of the limits: caches with
// MaxEntries below 2048 or MaxBytes below 2 MiB get one shard and so the
// exact policy. Tests and small caches should keep Shards at 1 (or 0 with
// small limits).
//
// # Expiry
//
// Each entry expires at the time its Set fixed (ttl 0 means DefaultTTL;
// a DefaultTTL of 0 means never). Get, GetWithTTL and Delete check the
// time, so an expired entry is never returned even before it is
// reclaimed. Expired entries still count against the limits until they
// are reclaimed, evicted (counted as expirations, not evictions) or read.
// The wheel's finest buckets are about one second wide, so the reclaimer
// frees an entry within about a second plus ReclaimInterval after it
// expires, unless more than ReclaimBudget entries of one shard are due at
// once, in which case it takes several ticks.
//
// # Concurrency
//
// All methods are safe for concurrent use. Each shard has one
// sync.RWMutex, taken for writing by every change; no call holds two
// shard locks. Lookups go through the shard's index, whose slots are
// atomic and whose entries never change once published, so a lookup
// needs no lock; what a Get does besides depends on the policy:
//
//   - LRU and LFU: it takes the write lock and updates the policy at
//     once, so the order of eviction is exact.
//   - FIFO: no lock at all, since reads do not move an entry.
//   - TinyLFU: no lock; the hit goes into the shard's lossy read buffer
//     (4 stripes of 64 slots, a stripe per goroutine as far as the
//     stripes go), which the next writer, or every sixteenth round the
//     reader that fills it if the lock is free, applies to the policy
//     under the write lock. Hits a stripe cannot hold until then are
//     dropped: with writes among the reads the policy sees nearly every
//     read, late; in a long run of reads alone, about one in sixteen.
//     BenchmarkTinyLFUReadPath measures this against the locked path.
//
// A Get that runs while a Set replaces the same key returns the old or
// the new value; one that starts after the Set returned sees the new one.
//
// Set, Delete, Clear and the reclaimer take the write lock; Stats and Len
// take the read lock of one shard at a time, so under concurrent writes
// they are a sum of per-shard snapshots, each of which respects its
// shard's limits. OnEvent is called after the shard's lock is released,
// on the goroutine of the call that caused the event (the reclaimer's
// goroutine for background expiry); it may call the store, must not
// block, and sees the events of one shard in order but those of
// different shards in no defined order. Close stops the reclaimer and
// waits for it to return.
package store
