package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"switchboard/services/gateway/internal/fakeauth"
)

// Soak mode runs the gateway processes for a while under churn and faults
// and checks that they come back to where they started:
//
//   - baseline: each replica is warmed up by two rounds of churn cycles,
//     then measured (goroutines and heap from /metrics after a forced
//     garbage collection, open file descriptors from /proc) once two
//     samples in a row agree;
//   - listeners: -conns clients (the Go client, which reconnects and
//     recovers) spread over the replicas, each in one of -rooms
//     conversation rooms, stay for the whole run;
//   - churn: -soak-churn clients at a time connect, authenticate, join a
//     conversation room, publish, leave and close, over and over, for
//     -duration; every acknowledged publish is recorded;
//   - faults, one every -soak-fault-every in turn: the replicas' Redis
//     pub/sub connections killed (CLIENT KILL TYPE pubsub), Redis stopped
//     with SIGSTOP for -soak-redis-pause, a replica SIGKILLed and started
//     again on its addresses (every replica but the last, in turn: the
//     last lives through the whole run, so its figures span all of it);
//   - end: every listener must hold every acknowledged message of its
//     room; then every client is closed and each replica is measured
//     until it is back within the tolerance of its baseline or -soak-settle
//     passed.
//
// A restarted replica is a new process: its baseline is its own, taken
// after its restart and warm-up and before any churn cycle reaches it
// (the restart holds the replica's slot, which churn cycles share). The
// baseline of the process it replaced is dropped with it.
//
// The run fails when a replica ends with more goroutines or file
// descriptors than its baseline plus the tolerance, a heap in use above
// its bound, when a listener lacks an acknowledged message, when a
// replica did not come back, or when no churn cycle completed. Churn
// publishes at most -rate a second over -rooms rooms: with the defaults of
// make soak (1,000 over 20) a room gets 50 a second, and its history
// (GATEWAY_HISTORY_CONVERSATION_SIZE, 1,000 by default) covers an outage of
// 20 s, far longer than a restart takes, so every listener stays inside
// retention and any acknowledged message it lacks is a loss.

// Bounds of the soak mode.
const (
	maxSoakDuration = 30 * time.Minute // under the listeners' one-hour tokens
	maxChurn        = 256
	maxRedisPause   = 3 * time.Second // under the gateway's 5 s request timeout
	maxSettle       = 2 * time.Minute
	cycleTimeout    = 10 * time.Second
	settlePoll      = 250 * time.Millisecond
)

// soakParams are the soak mode's flags.
type soakParams struct {
	churn      int           // churn clients at once
	faultEvery time.Duration // one fault per period, the kinds in turn
	redisPause time.Duration // how long Redis is stopped; 0: never
	settle     time.Duration // longest wait for a baseline or the return to it
}

func (s soakParams) check(p *params) error {
	switch {
	case p.gatewayBin == "":
		return errors.New("-mode soak needs -gateway-bin: it measures gateway processes")
	case p.replicas < 2:
		return errors.New("-mode soak needs -replicas 2 or more")
	case s.churn < 1 || s.churn > maxChurn:
		return fmt.Errorf("-soak-churn must be 1 to %d", maxChurn)
	case s.faultEvery < 100*time.Millisecond:
		return errors.New("-soak-fault-every must be at least 100ms")
	case s.redisPause < 0 || s.redisPause > maxRedisPause:
		return fmt.Errorf("-soak-redis-pause must be 0 to %v", maxRedisPause)
	case s.settle < time.Second || s.settle > maxSettle:
		return fmt.Errorf("-soak-settle must be 1s to %v", maxSettle)
	}
	return nil
}

// soakReport is the soak mode's part of the report.
type soakReport struct {
	ChurnSeconds  float64        `json:"churn_seconds"`
	ChurnClients  int            `json:"churn_clients"`
	Cycles        int64          `json:"churn_cycles"`
	CycleErrors   int64          `json:"churn_cycle_errors"`
	CycleError    string         `json:"churn_cycle_error_example,omitempty"`
	FaultEvery    float64        `json:"fault_every_seconds"`
	Faults        []faultRecord  `json:"faults"`
	Deliveries    soakDeliveries `json:"deliveries"`
	Tolerance     soakTolerance  `json:"tolerance"`
	SettleSeconds float64        `json:"settle_seconds"`
	Processes     []processFigs  `json:"gateway_processes"`
	Failures      []string       `json:"failures"`
	Passed        bool           `json:"passed"`
}

// soakDeliveries accounts for the acknowledged publishes at the listeners.
type soakDeliveries struct {
	Listeners  int     `json:"listeners"`
	Acked      int64   `json:"acked_publishes"`
	Expected   int64   `json:"expected_deliveries"`
	Delivered  int64   `json:"deliveries"`
	Missing    int64   `json:"acked_but_lost"`
	Duplicates int64   `json:"duplicates"`
	Gaps       int64   `json:"offset_gaps"`
	Recoveries int64   `json:"recoveries"`
	Incomplete int64   `json:"recoveries_incomplete"`
	CaughtUpS  float64 `json:"caught_up_seconds"`
}

// soak is one run of the soak mode.
type soak struct {
	// Read-only after construction.
	p         params
	fa        *fakeauth.Auth
	rdb       *redis.Client
	redisPID  int
	redisPort string
	slots     []*slot
	tokens    []string     // of the churn users, c0, c1, ...
	probe     *http.Client // measurements, one connection each
	acked     *ledger
	pace      *rate.Limiter // churn publishes, -rate a second
	start     time.Time

	// Safe on their own.
	seq            atomic.Int64
	cycles, failed atomic.Int64
	errOnce        sync.Once
	errExample     string // written once, under errOnce

	// Written by the fault goroutine while it runs, by the phase
	// otherwise.
	rep   *soakReport
	kills int
}

// newSoak prepares a soak over reps: a slot per replica, a Redis client for
// the faults, a token per churn user.
func newSoak(p params, fa *fakeauth.Auth, redisURL string, redisPID int, reps []*replica) (*soak, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	_, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, err
	}
	sk := &soak{p: p, fa: fa, rdb: redis.NewClient(opts), redisPID: redisPID, redisPort: port,
		probe: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second},
		acked: newLedger(p.rooms), pace: rate.NewLimiter(rate.Limit(p.rate), publishesPerCycle),
		rep: &soakReport{ChurnClients: p.soak.churn, FaultEvery: p.soak.faultEvery.Seconds(),
			Faults: []faultRecord{}, Tolerance: tolerance, Failures: []string{}}}
	for i, r := range reps {
		sk.slots = append(sk.slots, &slot{index: i, r: r, gone: make(chan struct{})})
	}
	for w := range p.soak.churn {
		user := churnUser(w)
		sk.tokens = append(sk.tokens, fa.Issue(user, "s"+user, time.Hour))
	}
	return sk, nil
}

func (sk *soak) close() { sk.rdb.Close() }

// soakPhase runs the soak over the started replicas and fills rep.Soak;
// it returns an error naming every failure.
func soakPhase(ctx context.Context, p params, fa *fakeauth.Auth, redisURL string, redisPID int, reps []*replica, rep *report) error {
	sk, err := newSoak(p, fa, redisURL, redisPID, reps)
	if err != nil {
		return err
	}
	defer sk.close()
	rep.Soak = sk.rep
	if err := sk.baselines(ctx); err != nil {
		return err
	}

	listeners, stopListeners, err := startRClients(ctx, p, fa, reps, rep, true)
	defer stopListeners()
	if err != nil {
		return err
	}
	sk.churnAndFaults(ctx)
	sk.account(listeners)
	stopListeners()

	sk.settle(ctx)
	return sk.verdict()
}

// baselines warms up and measures every replica, one after another.
func (sk *soak) baselines(ctx context.Context) error {
	for _, s := range sk.slots {
		base, err := sk.baseline(ctx, s.r)
		if err != nil {
			return err
		}
		s.base = base
	}
	return nil
}

// churnAndFaults runs the churn and the faults for the duration, and
// returns once both stopped.
func (sk *soak) churnAndFaults(ctx context.Context) {
	sk.start = time.Now()
	until := sk.start.Add(sk.p.duration)
	var wg sync.WaitGroup
	wg.Go(func() { sk.faults(ctx, until) })
	for w := range sk.p.soak.churn {
		wg.Go(func() { sk.churnWorker(ctx, w, until) })
	}
	wg.Wait()
	sk.rep.ChurnSeconds = time.Since(sk.start).Seconds()
	sk.rep.Cycles, sk.rep.CycleErrors = sk.cycles.Load(), sk.failed.Load()
	sk.rep.CycleError = sk.errExample
}

// account waits for the listeners to hold every acknowledged message (at
// most 60 s) and counts what they received.
func (sk *soak) account(listeners []*rclient) {
	start := time.Now()
	caughtUp := waitCaughtUp(listeners, sk.acked, sk.p.rooms)
	var rr recoveryReport
	account(listeners, sk.acked, sk.p.rooms, start, &rr)
	d := soakDeliveries{Listeners: len(listeners), Acked: sk.acked.total(), Expected: rr.Expected,
		Delivered: rr.Delivered, Missing: rr.Missing, Duplicates: rr.Duplicates, Gaps: rr.Gaps,
		CaughtUpS: caughtUp.Sub(start).Seconds()}
	for _, rc := range listeners {
		rc.mu.Lock()
		d.Recoveries += rc.recoveries
		d.Incomplete += rc.incomplete
		rc.mu.Unlock()
	}
	sk.rep.Deliveries = d
}

// verdict lists every failure in the report and returns them as one error.
func (sk *soak) verdict() error {
	r := sk.rep
	for _, f := range r.Faults {
		if f.Err != "" {
			r.Failures = append(r.Failures, fmt.Sprintf("%s of %s failed: %s", f.Kind, f.Target, f.Err))
		}
	}
	if r.Cycles == 0 {
		r.Failures = append(r.Failures, "no churn cycle completed")
	}
	if r.Deliveries.Missing > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d acknowledged deliveries lost at listeners that stayed inside retention", r.Deliveries.Missing))
	}
	for _, pf := range r.Processes {
		for _, l := range leaks(pf.Before, pf.After) {
			r.Failures = append(r.Failures, fmt.Sprintf("replica %d (pid %d): %s", pf.Replica, pf.PID, l))
		}
	}
	r.Passed = len(r.Failures) == 0
	if !r.Passed {
		return fmt.Errorf("soak failed: %s", strings.Join(r.Failures, "; "))
	}
	return nil
}
