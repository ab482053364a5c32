package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/libs/gatewayclient"
	"switchboard/services/gateway/internal/fakeauth"
)

// recoveryReport is what the recovery mode measures: every client starts
// on replica 0, which is killed while messages flow; the clients reconnect
// to the others at once and recover from their positions.
type recoveryReport struct {
	Clients        int     `json:"clients"`
	Acked          int64   `json:"acked_publishes"`
	Expected       int64   `json:"expected_deliveries"`
	Delivered      int64   `json:"deliveries"`
	Missing        int64   `json:"acked_but_lost"`
	Duplicates     int64   `json:"duplicates"`
	Gaps           int64   `json:"offset_gaps"`
	Recovered      int64   `json:"rooms_recovered"`
	NotRecovered   int64   `json:"rooms_not_recovered"`
	AllRecoveredS  float64 `json:"all_recovered_seconds"`
	CaughtUpS      float64 `json:"caught_up_after_publishing_seconds"`
	ReplicaKilledS float64 `json:"replica_killed_at_seconds"`
}

// rclient is one client of the recovery mode and what it received.
type rclient struct {
	c         *gatewayclient.Client
	room      string
	connected chan struct{}
	once      sync.Once

	mu        sync.Mutex
	seqs      map[int64]int // times each sequence number arrived
	last      gatewayclient.Message
	gaps      int64     // offsets skipped within an epoch
	recovered time.Time // when the first recovery after the kill was reported
	ok        bool
	// Every recovery report, not only the first: complete ones and those
	// that said messages may have been missed.
	recoveries, incomplete int64
}

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

// newRClient returns client i, whose first attempt goes to replica first
// and each later one to the next replica.
func newRClient(fa *fakeauth.Auth, i int, p params, reps []*replica, first int) *rclient {
	user := "u" + strconv.Itoa(i)
	conv := "r" + strconv.Itoa(i%p.rooms)
	fa.Grant(user, conv)
	rc := &rclient{room: "conversation:" + conv, connected: make(chan struct{}), seqs: make(map[int64]int)}
	urls := make([]string, len(reps))
	for j := range reps {
		urls[j] = "ws://" + reps[(first+j)%len(reps)].http + "/ws"
	}
	rc.c = gatewayclient.New(gatewayclient.Options{
		URLs: urls, Tokens: staticToken(fa.Issue(user, "s"+user, time.Hour)),
		OnMessage: rc.message, OnEvent: rc.event,
	})
	return rc
}

func (rc *rclient) message(m gatewayclient.Message) {
	var b body
	if m.Room != rc.room || json.Unmarshal(m.Data, &b) != nil {
		return
	}
	rc.mu.Lock()
	rc.seqs[b.Seq]++
	if rc.last.Position.Epoch == m.Position.Epoch && m.Position.Offset != rc.last.Position.Offset+1 {
		rc.gaps++
	}
	rc.last = m
	rc.mu.Unlock()
}

func (rc *rclient) event(e gatewayclient.Event) {
	if e.State == gatewayclient.StateConnected {
		rc.once.Do(func() { close(rc.connected) })
	}
	if ok, in := e.Recovery[rc.room]; in {
		rc.mu.Lock()
		if rc.recovered.IsZero() {
			rc.recovered, rc.ok = time.Now(), ok
		}
		if ok {
			rc.recoveries++
		} else {
			rc.incomplete++
		}
		rc.mu.Unlock()
	}
}

// recoveryPhase connects the clients to replica 0, publishes at the rate,
// kills replica 0 a third of the way through, and accounts for every
// acknowledged message.
func recoveryPhase(ctx context.Context, p params, fa *fakeauth.Auth, reps []*replica, rep *report) error {
	if len(reps) < 2 {
		return errors.New("-mode recovery needs -replicas 2 or more")
	}
	clients, stop, err := startRClients(ctx, p, fa, reps, rep, false)
	defer stop()
	if err != nil {
		return err
	}

	acked := newLedger(p.rooms)
	pub := newPublisher()
	defer pub.close()
	start := time.Now()
	var killedAt time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(p.duration / 3)
		killedAt = time.Now()
		reps[0].kill()
	})
	seqs := make(chan int64, 1024)
	var pubs sync.WaitGroup
	for range publishers {
		pubs.Go(func() {
			for seq := range seqs {
				room := int(seq % int64(p.rooms))
				if publishRetrying(ctx, pub, reps[1:], room, seq) {
					acked.add(room, seq)
				}
			}
		})
	}
	pace(ctx, p, start, seqs)
	close(seqs)
	pubs.Wait()
	wg.Wait()
	published := time.Now()

	rr := &recoveryReport{Clients: len(clients), ReplicaKilledS: killedAt.Sub(start).Seconds()}
	rr.Acked = acked.total()
	caughtUp := waitCaughtUp(clients, acked, p.rooms)
	rr.CaughtUpS = caughtUp.Sub(published).Seconds()
	account(clients, acked, p.rooms, killedAt, rr)
	rep.Recovery = rr
	return nil
}

// startRClients connects the clients and joins each to its room: all on
// replica 0 first, or spread over the replicas in turn.
func startRClients(ctx context.Context, p params, fa *fakeauth.Auth, reps []*replica, rep *report, spread bool) ([]*rclient, func(), error) {
	cctx, cancel := context.WithCancel(ctx)
	var runs sync.WaitGroup
	clients := make([]*rclient, p.conns)
	stop := func() {
		cancel()
		runs.Wait()
	}
	start := time.Now()
	sem := make(chan struct{}, p.connectPar)
	var joins sync.WaitGroup
	var failures atomic.Int64
	for i := range clients {
		first := 0
		if spread {
			first = i
		}
		rc := newRClient(fa, i, p, reps, first)
		clients[i] = rc
		runs.Go(func() { rc.c.Run(cctx) })
		sem <- struct{}{}
		joins.Go(func() {
			defer func() { <-sem }()
			if err := joinWhenConnected(cctx, rc); err != nil {
				failures.Add(1)
			}
		})
	}
	joins.Wait()
	rep.ConnectSeconds = time.Since(start).Seconds()
	rep.ConnectsPerSec = float64(p.conns) / rep.ConnectSeconds
	rep.ConnectFailures = failures.Load()
	if n := failures.Load(); n > 0 {
		return clients, stop, fmt.Errorf("%d clients failed to connect and join", n)
	}
	return clients, stop, nil
}

func joinWhenConnected(ctx context.Context, rc *rclient) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case <-rc.connected:
	case <-ctx.Done():
		return ctx.Err()
	}
	return rc.c.Join(ctx, rc.room)
}

// publishRetrying publishes seq with its idempotency key, on the replicas
// in turn, until acknowledged or 10 s passed.
func publishRetrying(ctx context.Context, pub *publisher, reps []*replica, room int, seq int64) bool {
	key := "seq-" + strconv.FormatInt(seq, 10)
	var data []byte
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		data = appendPayload(data[:0], seq, "")
		if pub.publish(reps[i%len(reps)].http, "conversation:r"+strconv.Itoa(room), key, data) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// ledger holds the acknowledged sequence numbers of each room.
type ledger struct {
	mu    sync.Mutex
	rooms []map[int64]bool
}

func newLedger(rooms int) *ledger {
	l := &ledger{rooms: make([]map[int64]bool, rooms)}
	for i := range l.rooms {
		l.rooms[i] = make(map[int64]bool)
	}
	return l
}

func (l *ledger) add(room int, seq int64) {
	l.mu.Lock()
	l.rooms[room][seq] = true
	l.mu.Unlock()
}

func (l *ledger) total() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, r := range l.rooms {
		n += int64(len(r))
	}
	return n
}

// missing counts the acknowledged messages of room rc has not received.
// Caller must hold rc.mu.
func (l *ledger) missing(rc *rclient, room int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for seq := range l.rooms[room] {
		if rc.seqs[seq] == 0 {
			n++
		}
	}
	return n
}

// waitCaughtUp waits (at most 60 s) until every client holds every
// acknowledged message of its room, and returns when.
func waitCaughtUp(clients []*rclient, acked *ledger, rooms int) time.Time {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		all := true
		for i, rc := range clients {
			rc.mu.Lock()
			n := acked.missing(rc, i%rooms)
			rc.mu.Unlock()
			if n > 0 {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

func account(clients []*rclient, acked *ledger, rooms int, killedAt time.Time, rr *recoveryReport) {
	var last time.Time
	for i, rc := range clients {
		rc.mu.Lock()
		acked.mu.Lock()
		rr.Expected += int64(len(acked.rooms[i%rooms]))
		acked.mu.Unlock()
		for _, n := range rc.seqs {
			rr.Delivered++
			rr.Duplicates += int64(n - 1)
		}
		rr.Missing += acked.missing(rc, i%rooms)
		rr.Gaps += rc.gaps
		switch {
		case rc.recovered.IsZero():
		case rc.ok:
			rr.Recovered++
		default:
			rr.NotRecovered++
		}
		if rc.recovered.After(last) {
			last = rc.recovered
		}
		rc.mu.Unlock()
	}
	if !last.IsZero() {
		rr.AllRecoveredS = last.Sub(killedAt).Seconds()
	}
}
