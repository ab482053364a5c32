package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"switchboard/libs/gatewayclient"
)

// slot is one replica of the soak. Churn cycles hold mu for reading while
// they use the replica; a restart holds it for writing, so no cycle reaches
// a restarted replica before its new baseline is taken.
type slot struct {
	index int // read-only

	mu       sync.RWMutex
	r        *replica      // guarded by mu; its fields are replaced on restart
	gone     chan struct{} // closed when r is killed; guarded by mu
	restarts int           // guarded by mu
	base     sample        // guarded by mu
	broken   bool          // a restart failed; guarded by mu
}

// acquire returns the replica's address and a context for one cycle on it,
// ended after cycleTimeout or when the replica is killed; release must be
// called after the cycle. ok is false while the replica is being restarted.
func (s *slot) acquire(ctx context.Context) (addr string, cctx context.Context, release func(), ok bool) {
	if !s.mu.TryRLock() {
		return "", nil, nil, false
	}
	cctx, cancel := context.WithTimeout(ctx, cycleTimeout)
	gone := s.gone
	go func() {
		select {
		case <-gone:
			cancel()
		case <-cctx.Done():
		}
	}()
	return s.r.http, cctx, func() { cancel(); s.mu.RUnlock() }, true
}

func churnUser(w int) string { return "c" + strconv.Itoa(w) }

// churnWorker runs cycles until the deadline, on the replicas in turn,
// skipping one that is being restarted.
func (sk *soak) churnWorker(ctx context.Context, w int, until time.Time) {
	for i := w; time.Now().Before(until) && ctx.Err() == nil; i++ {
		addr, cctx, release, ok := sk.slots[i%len(sk.slots)].acquire(ctx)
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		err := sk.cycle(cctx, addr, w, rand.IntN(sk.p.rooms), true)
		release()
		sk.count(err)
	}
}

func (sk *soak) count(err error) {
	if err == nil {
		sk.cycles.Add(1)
		return
	}
	sk.failed.Add(1)
	sk.errOnce.Do(func() { sk.errExample = err.Error() })
}

// publishesPerCycle is how many messages a churn client publishes.
const publishesPerCycle = 2

// cycle is one churn client's life on the replica at addr, as churn user
// w: connect and authenticate, join a conversation room, publish, leave,
// close. With record, its publishes are paced by -rate and the
// acknowledged ones go into the ledger.
func (sk *soak) cycle(ctx context.Context, addr string, w, room int, record bool) error {
	conv := "r" + strconv.Itoa(room)
	sk.fa.Grant(churnUser(w), conv)
	c, closeClient, err := openClient(ctx, addr, sk.tokens[w])
	if err != nil {
		return err
	}
	defer closeClient()

	name := "conversation:" + conv
	if err := c.Join(ctx, name); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	for range publishesPerCycle {
		if err := sk.paced(ctx, record); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		seq := sk.seq.Add(1)
		data := fmt.Sprintf(`{"seq":%d,"ts":%d}`, seq, time.Now().UnixNano())
		if _, err := c.Publish(ctx, name, json.RawMessage(data)); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if record {
			sk.acked.add(room, seq)
		}
	}
	if err := c.Leave(ctx, name); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// paced waits for the publish rate when on.
func (sk *soak) paced(ctx context.Context, on bool) error {
	if !on {
		return nil
	}
	return sk.pace.Wait(ctx)
}

// openClient runs a client of the gateway at addr until the returned close
// is called, and returns once it is connected and authenticated.
func openClient(ctx context.Context, addr, token string) (*gatewayclient.Client, func(), error) {
	connected := make(chan struct{})
	var once sync.Once
	c := gatewayclient.New(gatewayclient.Options{
		URL: "ws://" + addr + "/ws", Tokens: staticToken(token),
		OnEvent: func(e gatewayclient.Event) {
			if e.State == gatewayclient.StateConnected {
				once.Do(func() { close(connected) })
			}
		},
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var runErr error
	go func() { runErr = c.Run(rctx); close(done) }()
	closeClient := func() { cancel(); <-done }

	select {
	case <-connected:
		return c, closeClient, nil
	case <-done:
		cancel()
		return nil, nil, fmt.Errorf("connect: %w", runErr)
	case <-ctx.Done():
		closeClient()
		return nil, nil, fmt.Errorf("connect: %w", ctx.Err())
	}
}

// warmUp runs two rounds of -soak-churn cycles at once on addr, so that
// what a replica builds on first use (Redis connections, buffers, caches)
// exists before its baseline. Its publishes are not recorded.
func (sk *soak) warmUp(ctx context.Context, addr string) error {
	for range 2 {
		errs := make([]error, sk.p.soak.churn)
		var wg sync.WaitGroup
		for w := range sk.p.soak.churn {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, cycleTimeout)
				defer cancel()
				errs[w] = sk.cycle(cctx, addr, w, w%sk.p.rooms, false)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("warm-up of the gateway on %s: %w", addr, err)
		}
	}
	return nil
}
