// Package password hashes and checks passwords with argon2id (RFC 9106),
// stored in the PHC string form
// "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>".
//
// Glossary:
//   - Params: the cost of a new hash. A stored hash carries its own, so
//     raising the cost affects new hashes only.
//   - Hasher: hashes and checks with a cap on how many run at once, since
//     each holds Params.MemoryKiB of memory for its whole run.
//
// Concurrency: a Hasher is safe for concurrent use; calls beyond the cap
// wait for a slot or for their context.
package password
