package cacheclient

import "github.com/cespare/xxhash/v2"

// Rendezvous (highest random weight) hashing: every replica scores every
// key, and the key belongs to the replica with the highest score. Adding a
// replica moves only the keys it now wins, about 1/N of them; removing one
// moves only its own keys, to their second-best replica. The score depends
// on the key and the replica's address alone, so clients that list the same
// addresses agree on every key whatever the order of their lists.

// keyHash is the 64-bit hash of a key, computed once per call.
func keyHash(key string) uint64 { return xxhash.Sum64String(key) }

// addrSeed is the hash that identifies a replica in every score.
func addrSeed(addr string) uint64 { return xxhash.Sum64String(addr) }

// score combines a key's hash with a replica's seed. XOR alone would keep
// the ranking of replicas the same for keys that differ in few bits; the
// SplitMix64 finaliser that follows spreads every input bit over the whole
// result, so each replica's scores behave as independent draws.
func score(key, seed uint64) uint64 {
	z := key ^ seed
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// best returns the index of the replica with the highest score for key
// among those not excluded, or -1 when every replica is excluded. Equal
// scores, which 64 bits make vanishingly rare, go to the lower index, and
// replicas are sorted by address, so every client breaks ties alike.
func best(seeds []uint64, key uint64, excluded []bool) int {
	idx, top := -1, uint64(0)
	for i, s := range seeds {
		if excluded != nil && excluded[i] {
			continue
		}
		if sc := score(key, s); idx < 0 || sc > top {
			idx, top = i, sc
		}
	}
	return idx
}
