package store

// tinyLFU is W-TinyLFU: new entries enter a small LRU window; an entry
// pushed out of the window becomes the candidate that must beat the main
// region's victim, by the sketch's frequency estimate, to stay. The main
// region is a segmented LRU: probation for entries seen once in main,
// protected for entries used again (90% of main: 80% lost up to a point
// of hit ratio on the traces of docs/benchmarks.md). A hill climber moves
// the window's share between 0 and 80% of the entries, keeping a change
// while the hit ratio improves and reversing it when it falls.
type tinyLFU[K comparable, V any] struct {
	window    list[K, V]
	probation list[K, V]
	protected list[K, V]
	sk        sketch

	n          int          // entries in the three lists
	candidate  *entry[K, V] // last entry moved out of the window
	windowFrac float64
	rng        uint64

	// hill climber: the shard's read counters, and their values at the
	// end of the last sample
	reads                    func() (hits, misses uint64)
	ops                      uint32 // calls of climb; it samples every climbEvery
	sampleHits, sampleMisses uint64
	prevRate                 float64
	step                     float64
}

const (
	qWindow uint8 = iota + 1
	qProbation
	qProtected

	initialWindow   = 0.01
	maxWindow       = 0.80
	protectedShare  = 0.90
	climbStep       = 0.0625
	climbDecay      = 0.98
	climbRestart    = 0.05
	admitFloor      = 6 // candidates below this never win a tie at random
	minClimbSamples = 1024
)

func newTinyLFU[K comparable, V any](maxEntries int, reads func() (hits, misses uint64)) *tinyLFU[K, V] {
	p := &tinyLFU[K, V]{rng: 0x9E3779B97F4A7C15, reads: reads}
	p.sk.limit = maxEntries
	p.clear()
	return p
}

func (p *tinyLFU[K, V]) clear() {
	p.window.init()
	p.probation.init()
	p.protected.init()
	p.n = 0
	p.candidate = nil
	p.windowFrac = initialWindow
	p.sampleHits, p.sampleMisses = p.reads()
	p.prevRate = 0
	p.step = -climbStep
}

func (p *tinyLFU[K, V]) add(e *entry[K, V]) {
	p.candidate = nil
	e.queue = qWindow
	p.window.pushFront(e)
	p.n++
	if p.sk.needsGrow(p.n) {
		p.growSketch()
	}
	p.sk.increment(e.hash)
	p.shrinkWindow()
	p.climb()
}

// growSketch doubles the sketch and carries over the estimates of the
// entries present: O(n) once per doubling of n.
func (p *tinyLFU[K, V]) growSketch() {
	old := p.sk
	p.sk.grow(p.n)
	if old.table == nil {
		return
	}
	for _, l := range []*list[K, V]{&p.window, &p.probation, &p.protected} {
		for e := l.root.next; e != &l.root; e = e.next {
			p.sk.raise(e.hash, old.estimate(e.hash))
		}
	}
}

// shrinkWindow moves up to two entries past the window's share to the
// front of probation; the last one moved is the candidate.
func (p *tinyLFU[K, V]) shrinkWindow() {
	target := max(1, int(p.windowFrac*float64(p.n)))
	for i := 0; i < 2 && p.window.len > target; i++ {
		c := p.window.back()
		p.window.remove(c)
		c.queue = qProbation
		p.probation.pushFront(c)
		p.candidate = c
	}
}

func (p *tinyLFU[K, V]) hit(e *entry[K, V]) {
	p.touch(e)
	p.climb()
}

func (p *tinyLFU[K, V]) update(e *entry[K, V]) { p.touch(e) }

func (p *tinyLFU[K, V]) replace(old, nu *entry[K, V]) {
	swapLinks(old, nu)
	if p.candidate == old {
		p.candidate = nu
	}
}

// touch counts a use of e and moves it up its region.
func (p *tinyLFU[K, V]) touch(e *entry[K, V]) {
	p.sk.increment(e.hash)
	switch e.queue {
	case qWindow:
		p.window.moveToFront(e)
	case qProbation:
		p.probation.remove(e)
		e.queue = qProtected
		p.protected.pushFront(e)
		if e == p.candidate {
			p.candidate = nil
		}
		p.demote()
	case qProtected:
		p.protected.moveToFront(e)
	}
}

// demote moves the protected region's oldest entry back to probation
// when protected is past its share of main.
func (p *tinyLFU[K, V]) demote() {
	main := p.n - p.window.len
	if p.protected.len <= max(1, int(protectedShare*float64(main))) {
		return
	}
	d := p.protected.back()
	p.protected.remove(d)
	d.queue = qProbation
	p.probation.pushFront(d)
}

func (p *tinyLFU[K, V]) remove(e *entry[K, V]) {
	switch e.queue {
	case qWindow:
		p.window.remove(e)
	case qProbation:
		p.probation.remove(e)
	case qProtected:
		p.protected.remove(e)
	}
	e.queue = 0
	p.n--
	if e == p.candidate {
		p.candidate = nil
	}
}

// victim picks between the candidate and main's oldest entry by their
// estimated frequency; without a candidate it takes main's oldest.
func (p *tinyLFU[K, V]) victim(*entry[K, V]) *entry[K, V] {
	v := p.probation.back()
	if v == p.candidate {
		v = nil
		if p.probation.len > 1 {
			v = p.probation.root.prev.prev
		}
	}
	if v == nil {
		v = p.protected.back()
	}
	c := p.candidate
	switch {
	case v == nil && c != nil:
		return c
	case v == nil:
		return p.window.back()
	case c == nil:
		return v
	case p.admit(c, v):
		return v
	default:
		return c
	}
}

// admit reports whether candidate c should displace victim v. A candidate
// that is not more frequent loses, except that a fairly popular one wins
// one time in 128, so an attacker cannot pin the victim by flooding it.
func (p *tinyLFU[K, V]) admit(c, v *entry[K, V]) bool {
	cf, vf := p.sk.estimate(c.hash), p.sk.estimate(v.hash)
	if cf > vf {
		return true
	}
	if cf < admitFloor {
		return false
	}
	p.rng ^= p.rng << 13
	p.rng ^= p.rng >> 7
	p.rng ^= p.rng << 17
	return p.rng&127 == 0
}

// climbEvery is how often climb reads the shard's counters.
const climbEvery = 256

// climb adjusts the window's share once per sample of reads.
func (p *tinyLFU[K, V]) climb() {
	p.ops++
	if p.ops%climbEvery != 0 {
		return
	}
	h, m := p.reads()
	hits, total := h-p.sampleHits, h-p.sampleHits+m-p.sampleMisses
	if total < uint64(max(minClimbSamples, p.sk.sampleSize)) {
		return
	}
	rate := float64(hits) / float64(total)
	change := rate - p.prevRate
	amount := p.step
	if change < 0 {
		amount = -amount
	}
	p.windowFrac = min(max(p.windowFrac+amount, 0), maxWindow)
	if change >= climbRestart || change <= -climbRestart {
		p.step = climbStep
		if amount < 0 {
			p.step = -climbStep
		}
	} else {
		p.step = amount * climbDecay
	}
	p.prevRate = rate
	p.sampleHits, p.sampleMisses = h, m
}
