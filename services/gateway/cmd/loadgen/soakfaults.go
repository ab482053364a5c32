package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"
)

// The kinds of fault of the soak.
const (
	faultKill   = "replica_sigkill" // a replica SIGKILLed, then started again
	faultPubSub = "pubsub_killed"   // CLIENT KILL TYPE pubsub
	faultPause  = "redis_sigstop"   // Redis stopped, then continued
)

// faultRecord is one fault of the soak.
type faultRecord struct {
	AtSeconds float64 `json:"at_seconds"`
	Kind      string  `json:"kind"`
	Target    string  `json:"target"`
	// Seconds is how long the fault lasted: until a killed replica was
	// back with its new baseline, or Redis was continued.
	Seconds float64 `json:"seconds,omitempty"`
	// Killed is the number of pub/sub connections Redis closed.
	Killed int64  `json:"connections_killed,omitempty"`
	Err    string `json:"error,omitempty"`
}

// faults applies one fault every -soak-fault-every, the kinds in turn,
// until the deadline. A fault that is still running at the deadline is
// finished first. The quick kinds come first, so that a short run sees
// each kind before a replica's restart takes its time.
func (sk *soak) faults(ctx context.Context, until time.Time) {
	kinds := []func(context.Context) faultRecord{sk.killPubSub}
	if sk.p.soak.redisPause > 0 {
		kinds = append(kinds, sk.pauseRedis)
	}
	kinds = append(kinds, sk.killReplica)
	tick := time.NewTicker(sk.p.soak.faultEvery)
	defer tick.Stop()
	end := time.NewTimer(time.Until(until))
	defer end.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case <-tick.C:
		}
		at := time.Since(sk.start)
		f := kinds[i%len(kinds)](ctx)
		f.AtSeconds = at.Seconds()
		sk.rep.Faults = append(sk.rep.Faults, f)
	}
}

// killReplica SIGKILLs the replicas but the last in turn and starts each
// again. The last lives through the whole soak, so its figures span it.
func (sk *soak) killReplica(ctx context.Context) faultRecord {
	s := sk.slots[sk.kills%(len(sk.slots)-1)]
	sk.kills++
	f := faultRecord{Kind: faultKill, Target: "replica " + strconv.Itoa(s.index)}
	start := time.Now()
	if err := sk.restart(ctx, s); err != nil {
		f.Err = err.Error()
	}
	f.Seconds = time.Since(start).Seconds()
	return f
}

// restart SIGKILLs the slot's replica while its clients are connected,
// waits until no churn cycle uses it, starts it again on the same
// addresses, and takes its new baseline before churn may reach it.
func (sk *soak) restart(ctx context.Context, s *slot) error {
	if s.broken {
		return errors.New("not running since an earlier restart failed")
	}
	close(s.gone) // s.gone is replaced only below, under mu
	s.r.kill()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := sk.relaunch(ctx, s); err != nil {
		s.broken = true
		return err
	}
	s.gone = make(chan struct{})
	return nil
}

// relaunch starts the slot's killed replica again and takes its baseline.
// Caller must hold s.mu.
func (sk *soak) relaunch(ctx context.Context, s *slot) error {
	nr, err := s.r.restart(ctx)
	if err != nil {
		return err
	}
	*s.r = *nr
	s.restarts++
	base, err := sk.baseline(ctx, s.r)
	s.base = base
	return err
}

// killPubSub closes every pub/sub connection of Redis: the replicas'
// subscriptions.
func (sk *soak) killPubSub(ctx context.Context) faultRecord {
	f := faultRecord{Kind: faultPubSub, Target: "redis"}
	n, err := sk.rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	if err != nil {
		f.Err = err.Error()
	}
	f.Killed = n
	return f
}

// pauseRedis stops Redis with SIGSTOP for -soak-redis-pause.
func (sk *soak) pauseRedis(ctx context.Context) faultRecord {
	f := faultRecord{Kind: faultPause, Target: "redis"}
	start := time.Now()
	if err := syscall.Kill(sk.redisPID, syscall.SIGSTOP); err != nil {
		f.Err = fmt.Sprintf("SIGSTOP: %v", err)
		return f
	}
	select {
	case <-ctx.Done():
	case <-time.After(sk.p.soak.redisPause):
	}
	if err := syscall.Kill(sk.redisPID, syscall.SIGCONT); err != nil {
		f.Err = fmt.Sprintf("SIGCONT: %v", err)
	}
	f.Seconds = time.Since(start).Seconds()
	return f
}
