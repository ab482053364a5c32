package store

// wheel is a hierarchical timing wheel of the entries that have an expiry
// time, linked through their tprev and tnext fields. Level i has buckets
// of 2^shift[i] nanoseconds; an entry goes to the lowest level whose
// buckets reach its expiry. Advancing the wheel splices every bucket whose
// time has come onto the due list in O(1) per bucket; the reclaimer then
// takes a bounded number of entries off the due list per tick, expiring
// those whose time has passed and filing the rest again lower down.
type wheel[K comparable, V any] struct {
	levels [wheelLevels][]timerList[K, V]
	due    timerList[K, V]
	time   int64 // unix nanoseconds the wheel has advanced to
}

// timerList is a circular list of entries through tprev and tnext with a
// sentinel root.
type timerList[K comparable, V any] struct {
	root entry[K, V]
}

func (l *timerList[K, V]) init() {
	l.root.tprev = &l.root
	l.root.tnext = &l.root
}

const wheelLevels = 5

// wheelShift[i] is log2 of the width in nanoseconds of a level-i bucket:
// about 1.07 s, 1.15 min, 1.22 h, 1.63 d and 26 d.
var wheelShift = [wheelLevels]uint{30, 36, 42, 47, 51}

// wheelSize[i] is the number of buckets of level i (a power of two).
var wheelSize = [wheelLevels]int{64, 64, 32, 16, 1}

func newWheel[K comparable, V any](now int64) *wheel[K, V] {
	w := &wheel[K, V]{time: now}
	for i := range w.levels {
		w.levels[i] = make([]timerList[K, V], wheelSize[i])
		for j := range w.levels[i] {
			w.levels[i][j].init()
		}
	}
	w.due.init()
	return w
}

// schedule files e, whose expire is set, by its expiry time.
func (w *wheel[K, V]) schedule(e *entry[K, V]) {
	l := w.bucket(e.expire)
	e.tprev = &l.root
	e.tnext = l.root.tnext
	l.root.tnext.tprev = e
	l.root.tnext = e
}

// bucket returns the list an entry expiring at t belongs in: the lowest
// level whose ring reaches t's tick without wrapping. An entry of a higher
// level is therefore never in its level's current tick.
func (w *wheel[K, V]) bucket(t int64) *timerList[K, V] {
	if t <= w.time {
		return &w.due
	}
	for i := 0; i < wheelLevels-1; i++ {
		tick := t >> wheelShift[i]
		if tick-w.time>>wheelShift[i] < int64(wheelSize[i]) {
			return &w.levels[i][tick&int64(wheelSize[i]-1)]
		}
	}
	return &w.levels[wheelLevels-1][0]
}

// unschedule takes e out of whatever bucket holds it.
func (w *wheel[K, V]) unschedule(e *entry[K, V]) {
	if e.tnext == nil {
		return
	}
	e.tprev.tnext = e.tnext
	e.tnext.tprev = e.tprev
	e.tprev = nil
	e.tnext = nil
}

// advance moves the wheel to now, splicing onto the due list every
// bucket whose tick has come: at level 0 also the current tick's bucket,
// which holds entries due within the tick; at the higher levels only
// ticks that have passed since the last advance, since their current
// buckets hold nothing due yet.
func (w *wheel[K, V]) advance(now int64) {
	if now < w.time {
		return
	}
	for i := 0; i < wheelLevels; i++ {
		from, to := w.time>>wheelShift[i], now>>wheelShift[i]
		if i > 0 {
			from++
		}
		n := int64(wheelSize[i])
		if to-from >= n {
			from = to - n + 1
		}
		for t := from; t <= to; t++ {
			w.spliceDue(&w.levels[i][t&(n-1)])
		}
	}
	w.time = now
}

// spliceDue moves every entry of l to the front of the due list.
func (w *wheel[K, V]) spliceDue(l *timerList[K, V]) {
	if l.root.tnext == &l.root {
		return
	}
	first, last := l.root.tnext, l.root.tprev
	l.root.tnext, l.root.tprev = &l.root, &l.root
	d := &w.due.root
	first.tprev = d
	last.tnext = d.tnext
	d.tnext.tprev = last
	d.tnext = first
}

// popDue takes one entry off the due list, or returns nil.
func (w *wheel[K, V]) popDue() *entry[K, V] {
	e := w.due.root.tprev
	if e == &w.due.root {
		return nil
	}
	w.unschedule(e)
	return e
}
