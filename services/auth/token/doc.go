// Package token makes and checks the credentials of a session: signed JWT
// access tokens, the keys that sign them, and opaque refresh tokens.
//
// Glossary:
//   - Key: one asymmetric key pair (EdDSA over Ed25519, or ES256 over P-256)
//     named by its kid, the RFC 7638 thumbprint of its public half.
//   - Keyring: the keys of one auth replica. One key signs; every key that may
//     still have signed a live token verifies; the JWKS lists them all.
//   - Minter: signs access tokens with the keyring's signing key.
//   - Verifier: checks an access token: length cap, algorithm allow-list,
//     typ "at+jwt", known kid whose algorithm matches, signature, issuer,
//     audience, required exp, nbf and iat within a bounded leeway.
//   - Refresh token: "rt1.<session id>.<secret>", 256 random bits of secret.
//     The store only ever sees Hash(token); Seal and Open carry the current
//     token across a rotation for the holder of the previous one.
//
// Rotation with overlap: a generated keyring publishes the next key one
// period before it starts signing, and keeps a retired key for verification
// until every token it signed has expired (access TTL plus leeway). A keyring
// read from a file signs with the file's first key and keeps keys removed
// from the file for the same overlap.
//
// Errors never contain a token or any part of one.
//
// Concurrency: a Keyring, Minter and Verifier are safe for concurrent use;
// Keyring methods take a read lock on the hot path, and rotation swaps an
// immutable snapshot.
package token
