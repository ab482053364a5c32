// Package storetest is the one test suite every store.Store implementation
// must pass. Run it from the implementation's tests with a constructor that
// returns a fresh, empty store.
//
// Glossary:
//   - Factory: makes a fresh, empty store for one test.
//   - Inspector: lists every value a store holds, so the suite can check
//     that the sealed current token is gone once the grace is over.
//   - Run: the suite: users, session lifetime, rotation (normal, replay
//     within the grace, the sealed token dropped after it, reuse after it,
//     old and unknown tokens), 50
//     parallel rotations of one token, rotation racing revocation,
//     revocations and their events, conversation access.
//
// Concurrency: Run's tests use the store from many goroutines at once; a
// store under test must be safe for concurrent use.
package storetest
