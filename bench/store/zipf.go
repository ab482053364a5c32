package storebench

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf draws ranks 0..n-1 with probability proportional to 1/(r+1)^s,
// for any s > 0, by inverting the cumulative distribution.
type Zipf struct {
	cdf []float64
	rng *rand.Rand
}

// NewZipf returns a generator over n ranks with skew s, seeded by seed.
func NewZipf(n int, s float64, seed uint64) *Zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for r := range n {
		sum += 1 / math.Pow(float64(r+1), s)
		cdf[r] = sum
	}
	for r := range cdf {
		cdf[r] /= sum
	}
	return &Zipf{cdf: cdf, rng: rand.New(rand.NewPCG(seed, 0x5EED))}
}

// Next returns the next rank.
func (z *Zipf) Next() uint64 {
	u := z.rng.Float64()
	r := sort.SearchFloat64s(z.cdf, u)
	return uint64(min(r, len(z.cdf)-1))
}
