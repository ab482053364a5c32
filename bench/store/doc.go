// Package storebench measures libs/store against otter and ristretto:
// throughput with Zipf-distributed keys, hit ratio on synthetic traces
// beside Bélády's optimum, and accounted bytes against the heap.
//
// Everything here is deterministic from a seed: the same seed gives the
// same traces and the same key sequences. Figures are measurements; no
// test asserts a speed.
//
// # Glossary
//
//   - Zipf: a generator of ranks 0..n-1 where rank r is drawn with
//     probability proportional to 1/(r+1)^s.
//   - trace: a sequence of keys replayed against a cache as get-then-set.
//   - Sim: a cache under replay, reporting whether each key hit.
//   - Belady: the optimal offline policy, which evicts the key next used
//     furthest in the future (or declines to admit a key that is).
//
// # Concurrency
//
// Generators and simulators are for one goroutine each. The throughput
// benchmarks share one cache among b.RunParallel goroutines, each with
// its own position in a shared, read-only key slice.
package storebench
