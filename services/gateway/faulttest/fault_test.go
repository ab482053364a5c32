package faulttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
)

// settle bounds the wait for every acknowledged message to arrive.
const settle = 10 * time.Second

func assertClean(t *testing.T, s summary) {
	t.Helper()
	if s.Lost != 0 || s.Duplicates != 0 || s.Order != 0 {
		t.Fatalf("%s: lost %d, duplicates %d, order violations %d; want 0 each", s.Scenario, s.Lost, s.Duplicates, s.Order)
	}
}

func receivers(s *stack, n int, room string, urls ...string) []*receiver {
	rcs := make([]*receiver, n)
	for i := range rcs {
		rcs[i] = s.receiver(fmt.Sprintf("u%d", i), room, urls...)
	}
	return rcs
}

// A replica is killed while messages flow; its clients reconnect to the
// other replica and recover from their positions.
func TestReplicaKilled(t *testing.T) {
	s := newStack(t)
	a, b := s.replica(), s.replica()
	room := "conversation:kill"
	rcs := receivers(s, 4, room, a.ws(), b.ws())
	p := newPublisher(room, b)
	p.run(50, 2*time.Millisecond)

	var wg sync.WaitGroup
	wg.Go(func() { p.run(150, 2*time.Millisecond) })
	a.kill()
	start := time.Now()
	wg.Wait()
	rec := caughtUp(t, rcs, 200, start)
	assertClean(t, account(t, "replica SIGKILL", p, rcs, rec, settle))
	for i, rc := range rcs {
		if n := rc.connections(); n < 2 {
			t.Fatalf("receiver %d reported %d connections; want a reconnection after the kill", i, n)
		}
	}
}

// The pub/sub connection of the receivers' replica is killed mid-stream:
// the replica repairs the gap from history.
func TestPubSubKilled(t *testing.T) {
	s := newStack(t)
	a, b := s.replica(), s.replica()
	room := "conversation:pubsub"
	rcs := receivers(s, 3, room, a.ws())
	p := newPublisher(room, b)
	p.run(50, 2*time.Millisecond)

	var wg sync.WaitGroup
	wg.Go(func() { p.run(150, 2*time.Millisecond) })
	if err := s.redis.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wg.Wait()
	rec := caughtUp(t, rcs, 200, start)
	assertClean(t, account(t, "pub/sub CLIENT KILL", p, rcs, rec, settle))
}

// A client offline for less than the retention recovers everything; one
// offline for more is told, explicitly, that it did not.
func TestOffline(t *testing.T) {
	s := newStack(t, "GATEWAY_HISTORY_CONVERSATION_SIZE=20")
	a := s.replica()
	tests := []struct {
		name      string
		offline   int // messages published while offline
		recovered bool
	}{
		{"inside retention", 15, true},
		{"beyond retention", 400, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			room := "conversation:off-" + fmt.Sprint(tt.offline)
			rc := s.receiver("u-"+fmt.Sprint(tt.offline), room, a.ws())
			p := newPublisher(room, a)
			p.run(10, 0)
			caughtUp(t, []*receiver{rc}, 10, time.Now())
			rc.stop()
			p.run(tt.offline, 0)
			start := time.Now()
			rc.start()
			poll(t, "a recovery report", 10*time.Second, func() bool {
				rc.mu.Lock()
				defer rc.mu.Unlock()
				return len(rc.recovered) > 0
			})
			rec := time.Since(start)
			p.run(5, 0)
			wait := settle
			if !tt.recovered {
				wait = time.Second // the losses are expected: no need to wait them out
			}
			sum := account(t, "offline "+tt.name, p, []*receiver{rc}, rec, wait)
			if got := !rc.flagged(); got != tt.recovered {
				t.Fatalf("recovered %v, want %v", got, tt.recovered)
			}
			if tt.recovered {
				assertClean(t, sum)
				return
			}
			if sum.Lost == 0 || sum.Duplicates != 0 || sum.Order != 0 {
				t.Fatalf("beyond retention: %+v; want losses, all flagged, no duplicates", sum)
			}
		})
	}
}

// Redis restarts empty: epochs change, every receiver that may have
// missed messages of the old epoch is told, and none misses an
// acknowledged message of the new one.
func TestRedisRestarted(t *testing.T) {
	s := newStack(t)
	a, b := s.replica(), s.replica()
	room := "conversation:restart"
	rcs := receivers(s, 3, room, a.ws())
	p := newPublisher(room, b)
	p.run(30, 2*time.Millisecond)
	first, ok := p.ackedSet()[30]
	if !ok {
		t.Fatal("message 30, before the restart, was not acknowledged")
	}

	var wg sync.WaitGroup
	wg.Go(func() { p.run(100, 5*time.Millisecond) })
	time.Sleep(50 * time.Millisecond)
	s.redis.Restart()
	start := time.Now()
	wg.Wait()
	rec := caughtUp(t, rcs, 100, start)
	sum := account(t, "redis restart", p, rcs, rec, settle)
	acked := p.ackedSet()
	last, ok := acked[130]
	if !ok {
		t.Fatal("message 130, after the restart, was not acknowledged")
	}
	if last.Epoch == first.Epoch {
		t.Fatalf("epoch %s survived a restart without persistence", first.Epoch)
	}
	if sum.Duplicates != 0 || sum.Order != 0 {
		t.Fatalf("%+v: want no duplicates nor order violations", sum)
	}
	after := ackedIn(acked, first.Epoch)
	for i, rc := range rcs {
		if n := missing(rc, after); n > 0 {
			t.Fatalf("receiver %d lost %d of the %d messages acknowledged in the new epoch", i, n, len(after))
		}
		if missing(rc, acked) > 0 && !rc.flagged() {
			t.Fatalf("receiver %d lost messages without being told", i)
		}
	}
}

// Redis paused: a publish fails with an error within the gateway's request
// timeout; retried with the same key after Redis resumes, it is delivered
// once.
func TestRedisPaused(t *testing.T) {
	s := newStack(t)
	a := s.replica()
	room := "conversation:pause"
	rcs := receivers(s, 2, room, a.ws())
	p := newPublisher(room, a)
	p.run(10, 0)

	s.redis.Pause()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := publishOnce(ctx, a, room, 11, "paused-11")
	failedIn := time.Since(start)
	cancel()
	s.redis.Resume()
	if err == nil {
		t.Fatal("a publish to a paused Redis succeeded")
	}
	t.Logf("publish to a paused Redis failed after %v: %v", failedIn, err)
	// A correctness bound, not a timing target: the gateway answers with
	// an error once its request timeout passes; it must not hang until the
	// client gives up.
	if bound := requestTimeout + 2*time.Second; failedIn > bound || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the publish failed after %v (%v); want an error from the gateway within %v", failedIn, err, bound)
	}

	var res protocol.PublishResult
	poll(t, "the retry acknowledged", 10*time.Second, func() bool {
		res, err = publishOnce(context.Background(), a, room, 11, "paused-11")
		return err == nil
	})
	p.mu.Lock()
	p.acked[11], p.next = res, 11
	p.mu.Unlock()
	p.run(5, 0)
	assertClean(t, account(t, "redis SIGSTOP", p, rcs, time.Since(start), settle))
}

// The same publish sent twice, one after the other and racing, on two
// replicas: stored and delivered once, same position.
func TestSamePublishTwice(t *testing.T) {
	s := newStack(t)
	a, b := s.replica(), s.replica()
	room := "conversation:twice"
	rcs := append(receivers(s, 2, room, a.ws()), s.receiver("ub", room, b.ws()))
	p := newPublisher(room, a)

	r1, err1 := publishOnce(context.Background(), a, room, 1, "same-1")
	r2, err2 := publishOnce(context.Background(), b, room, 1, "same-1")
	if err1 != nil || err2 != nil || r1 != r2 {
		t.Fatalf("sequential repeats answered %+v (%v) and %+v (%v)", r1, err1, r2, err2)
	}
	var racing [2]protocol.PublishResult
	var wg sync.WaitGroup
	for i, r := range []*replica{a, b} {
		wg.Go(func() { racing[i], _ = publishOnce(context.Background(), r, room, 2, "same-2") })
	}
	wg.Wait()
	if racing[0] != racing[1] || racing[0].Offset == 0 {
		t.Fatalf("racing repeats answered %+v", racing)
	}
	p.mu.Lock()
	p.acked[1], p.acked[2], p.next = r1, racing[0], 2
	p.mu.Unlock()
	p.run(3, 0)
	assertClean(t, account(t, "same publish twice", p, rcs, 0, settle))
}
