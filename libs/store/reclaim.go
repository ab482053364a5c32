package store

import "time"

// startReclaimer starts the background goroutine that reclaims expired
// entries every interval (0 = defaultInterval; negative = none).
func (s *Store[K, V]) startReclaimer(interval time.Duration) {
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	if interval < 0 {
		close(s.done)
		return
	}
	if interval == 0 {
		interval = defaultInterval
	}
	go s.reclaimLoop(interval)
}

func (s *Store[K, V]) reclaimLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.ReclaimExpired()
		}
	}
}

// ReclaimExpired runs one reclaimer tick now: in each shard it examines
// at most Options.ReclaimBudget entries that are due and removes those
// that have expired, delivering their expire events. It returns how many
// it removed. The background reclaimer calls it every ReclaimInterval;
// tests with a fake clock call it directly.
func (s *Store[K, V]) ReclaimExpired() int {
	now := s.now()
	total := 0
	var evs []Event[K]
	for _, sh := range s.shards {
		var n int
		evs, n = sh.reclaim(s, now, s.budget, evs[:0])
		total += n
		s.emit(evs)
	}
	return total
}

// Close stops the background reclaimer and waits for it. The store stays
// usable; expired entries are then removed only when read or evicted, or
// by ReclaimExpired. Close is idempotent.
func (s *Store[K, V]) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
}
