package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/services/gateway/internal/fakeauth"
)

// report is the JSON the command prints.
type report struct {
	Mode             string  `json:"mode"`
	GatewayProcesses bool    `json:"gateway_processes"`
	Replicas         int     `json:"replicas"`
	ReplicaProcs     int     `json:"replica_procs,omitempty"` // GOMAXPROCS set for each replica
	Connections      int     `json:"connections"`
	Rooms            int     `json:"rooms"`
	ConnectSeconds   float64 `json:"connect_seconds"`
	ConnectsPerSec   float64 `json:"connects_per_second"`
	ConnectFailures  int64   `json:"connect_failures"`
	// Held is the connections the replicas report holding once every
	// client has connected (switchboard_gateway_connections, summed).
	Held             int64   `json:"connections_held"`
	RSSPerConnection float64 `json:"rss_bytes_per_connection,omitempty"`

	Rate           int     `json:"rate,omitempty"`
	Seconds        float64 `json:"publish_seconds,omitempty"`
	PayloadBytes   int     `json:"payload_bytes,omitempty"`
	AchievedRate   float64 `json:"achieved_rate,omitempty"`
	*counts                // fanout mode only; nil: none of its fields printed
	DeliveriesPerS float64 `json:"deliveries_per_second,omitempty"`
	LatencyMS      *pcts   `json:"latency_ms,omitempty"`
	ServerCPU      float64 `json:"server_cpu_seconds,omitempty"`
	RedisCPU       float64 `json:"redis_cpu_seconds,omitempty"`
	ServerCPUPerUS float64 `json:"server_cpu_us_per_delivery,omitempty"`
	Note           string  `json:"note,omitempty"`

	Recovery *recoveryReport `json:"recovery,omitempty"`
	Steps    *stepReport     `json:"step,omitempty"`
	Soak     *soakReport     `json:"soak,omitempty"`

	GoVersion string `json:"go_version"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
}

// counts are what the fanout mode published and delivered. They are
// printed whole, zeros included, so that an absent "lost" never stands for
// none; the other modes print none of them (idle and storm publish
// nothing, and the step, recovery and soak modes count in their own part
// of the report).
type counts struct {
	Published     int64 `json:"published"`
	PublishErrors int64 `json:"publish_errors"`
	// Expected is each acknowledged publish times its room's members.
	Expected int64 `json:"expected_deliveries"`
	// Delivered counts distinct deliveries: a sequence number arriving
	// again at the same client is counted in Duplicates instead.
	Delivered  int64 `json:"deliveries"`
	Duplicates int64 `json:"duplicates"`
	// Lost is Expected minus Delivered, so a duplicate cannot hide a loss.
	Lost int64 `json:"lost"`
}

type pcts struct {
	P50, P90, P99, Max float64
}

// recorder counts deliveries, distinct per client by sequence number, and
// their latencies.
type recorder struct {
	delivered atomic.Int64 // distinct deliveries

	mu         sync.Mutex
	seen       map[int]map[int64]struct{} // sequence numbers per client
	duplicates int64
	lat        []time.Duration // of distinct deliveries
}

func newRecorder() *recorder {
	return &recorder{seen: make(map[int]map[int64]struct{})}
}

// add records the delivery of seq to client after d. A sequence number the
// client has had already is counted as a duplicate, without its latency.
func (r *recorder) add(client int, seq int64, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seqs := r.seen[client]
	if seqs == nil {
		seqs = make(map[int64]struct{})
		r.seen[client] = seqs
	}
	if _, dup := seqs[seq]; dup {
		r.duplicates++
		return
	}
	seqs[seq] = struct{}{}
	r.lat = append(r.lat, d)
	r.delivered.Add(1)
}

// reset forgets every delivery counted so far.
func (r *recorder) reset() {
	r.mu.Lock()
	r.lat = nil
	r.seen = make(map[int]map[int64]struct{})
	r.duplicates = 0
	r.delivered.Store(0)
	r.mu.Unlock()
}

// counts returns the deliveries and duplicates recorded, and what was lost
// of expected.
func (r *recorder) counts(expected int64) (delivered, duplicates, lost int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delivered = r.delivered.Load()
	return delivered, r.duplicates, expected - delivered
}

func (r *recorder) percentiles() *pcts {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lat) == 0 {
		return nil
	}
	slices.Sort(r.lat)
	at := func(q float64) float64 {
		return float64(r.lat[min(int(q*float64(len(r.lat))), len(r.lat)-1)]) / 1e6
	}
	return &pcts{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: at(1)}
}

func run(ctx context.Context, p params) (*report, error) {
	fa, err := fakeauth.Start()
	if err != nil {
		return nil, err
	}
	defer fa.Stop()
	redisURL, redisPID, stopRedis, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer stopRedis()

	var reps []*replica
	defer func() {
		for _, r := range reps {
			r.stop()
		}
	}()
	for range p.replicas {
		var r *replica
		if p.gatewayBin != "" {
			r, err = startProcess(ctx, p.gatewayBin, fa, redisURL, p.procs, p.debug || p.mode == "soak", p.debug)
		} else {
			r, err = startInProcess(ctx, fa, redisURL)
		}
		if err != nil {
			return nil, err
		}
		reps = append(reps, r)
	}

	rep := newReport(p)
	switch p.mode {
	case "recovery":
		rep.Rate = p.rate
		return rep, recoveryPhase(ctx, p, fa, reps, rep)
	case "soak":
		rep.Rate = p.rate
		return rep, soakPhase(ctx, p, fa, redisURL, redisPID, reps, rep)
	}
	rec := newRecorder()
	closeClients, err := connectAll(ctx, p, fa, reps, rec, rep)
	defer closeClients()
	if err != nil {
		return nil, err
	}
	if p.memProfile != "" {
		writeHeap(p.memProfile)
	}
	switch p.mode {
	case "fanout":
		publishPhase(ctx, p, reps, redisPID, rec, rep)
	case "step":
		stepPhase(ctx, p, reps, redisPID, rec, rep)
	}
	return rep, nil
}

func newReport(p params) *report {
	return &report{Mode: p.mode, GatewayProcesses: p.gatewayBin != "", Replicas: p.replicas, ReplicaProcs: p.procs,
		Connections: p.conns, Rooms: p.rooms, GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		CPUModel: cpuModel()}
}

// connectAll opens the connections, measures their rate and the replicas'
// memory per connection. Connections past ownConns are opened and held by
// a helper process, at the same time as this one's. stop closes them all.
func connectAll(ctx context.Context, p params, fa *fakeauth.Auth, reps []*replica, rec *recorder, rep *report) (stop func(), err error) {
	var before int64
	for _, r := range reps {
		before += rssBytes(r.pid)
	}
	dials := make([]dial, p.conns)
	for i := range p.conns {
		user := "u" + strconv.Itoa(i)
		fa.Grant(user, "r"+strconv.Itoa(i%p.rooms))
		dials[i] = dial{reps[i%len(reps)].http, fa.Issue(user, "s"+strconv.Itoa(i), time.Hour), "conversation:r" + strconv.Itoa(i%p.rooms)}
	}
	own := min(p.conns, p.ownConns())
	loops, stopLoops, err := newLoops(runtime.NumCPU(), rec)
	if err != nil {
		return func() {}, err
	}
	var clients []*client
	stopHolder := func() {}
	stop = func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
		stopLoops()
		stopHolder()
	}
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	if own < p.conns {
		var h *holder
		var herr error
		wg.Go(func() {
			var failed int64
			h, failed, herr = startHolder(ctx, dials[own:], p.connectPar)
			failures.Add(failed)
		})
		defer func() {
			if herr != nil {
				err = errors.Join(err, herr)
			} else {
				stopHolder = h.stop
			}
		}()
	}
	clients, failed := dialAll(ctx, dials[:own], p.connectPar, loops)
	failures.Add(failed)
	wg.Wait()
	rep.ConnectSeconds = time.Since(start).Seconds()
	rep.ConnectsPerSec = float64(p.conns) / rep.ConnectSeconds
	rep.ConnectFailures = failures.Load()

	if rep.Held, err = connectionsHeld(ctx, reps); err != nil {
		return stop, err
	}
	if rep.GatewayProcesses {
		runtime.GC()
		time.Sleep(2 * time.Second) // let the replicas settle
		var after int64
		for _, r := range reps {
			after += rssBytes(r.pid)
		}
		rep.RSSPerConnection = float64(after-before) / float64(max(p.conns-int(rep.ConnectFailures), 1))
	}
	if rep.ConnectFailures > 0 {
		return stop, fmt.Errorf("%d connections failed", rep.ConnectFailures)
	}
	return stop, nil
}

// connectionsHeld sums the connections the replicas report on /metrics.
func connectionsHeld(ctx context.Context, reps []*replica) (int64, error) {
	var held int64
	for _, r := range reps {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.metrics+"/metrics", nil)
		if err != nil {
			return 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		v, err := gauge(resp.Body, "switchboard_gateway_connections")
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("replica %s: %w", r.http, err)
		}
		held += int64(v)
	}
	return held, nil
}

// gauge reads an unlabelled metric from a Prometheus text exposition.
func gauge(body io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if value, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(value, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s missing from /metrics", name)
}

// body is the load generator's payload, as the recovery mode's clients
// decode it.
type body struct {
	Seq int64 `json:"seq"`
	TS  int64 `json:"ts"`
}

// publishers is the number of publish calls in flight at most.
const publishers = 128

// publishPhase publishes at the rate for the duration and measures what
// arrived.
func publishPhase(ctx context.Context, p params, reps []*replica, redisPID int, rec *recorder, rep *report) {
	members := make([]int64, p.rooms)
	for i := range p.conns {
		members[i%p.rooms]++
	}
	cpu0, redis0 := serverCPU(reps, redisPID), cpuSeconds(redisPID)
	pad := strings.Repeat("x", max(p.payload-40, 1))

	var published, failed, expected atomic.Int64
	seqs := make(chan int64, 1024)
	pub := newPublisher()
	defer pub.close()
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			var data []byte
			for seq := range seqs {
				room := int(seq % int64(p.rooms))
				data = appendPayload(data[:0], seq, pad)
				if pub.publish(reps[seq%int64(len(reps))].http, "conversation:r"+strconv.Itoa(room), "", data) {
					published.Add(1)
					expected.Add(members[room])
				} else {
					failed.Add(1)
				}
			}
		})
	}
	start := time.Now()
	pace(ctx, p, start, seqs)
	close(seqs)
	wg.Wait()
	elapsed := time.Since(start)
	waitSettled(rec, expected.Load())
	cpu1, redis1 := serverCPU(reps, redisPID), cpuSeconds(redisPID)

	rep.Rate, rep.Seconds, rep.PayloadBytes = p.rate, elapsed.Seconds(), p.payload
	n := &counts{Published: published.Load(), PublishErrors: failed.Load(), Expected: expected.Load()}
	n.Delivered, n.Duplicates, n.Lost = rec.counts(n.Expected)
	rep.counts = n
	rep.AchievedRate = float64(rep.Published) / elapsed.Seconds()
	rep.DeliveriesPerS = float64(rep.Delivered) / elapsed.Seconds()
	rep.LatencyMS = rec.percentiles()
	rep.ServerCPU, rep.RedisCPU = cpu1-cpu0, redis1-redis0
	if rep.Delivered > 0 {
		rep.ServerCPUPerUS = rep.ServerCPU * 1e6 / float64(rep.Delivered)
	}
	if !rep.GatewayProcesses {
		rep.Note = "replicas ran in the load generator's process: CPU includes the clients and the publisher"
	} else {
		rep.Note = "server CPU: the gateway processes and redis-server; latency: publish call to client read"
	}
}

// pace sends sequence numbers at the rate until the duration is over.
func pace(ctx context.Context, p params, start time.Time, seqs chan<- int64) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			elapsed := now.Sub(start)
			if elapsed >= p.duration {
				return
			}
			for due := int64(elapsed.Seconds() * float64(p.rate)); sent < due; sent++ {
				seqs <- sent
			}
		}
	}
}

// waitSettled waits until every expected delivery arrived or nothing
// arrived for two seconds.
func waitSettled(rec *recorder, expected int64) {
	last, since := rec.delivered.Load(), time.Now()
	for rec.delivered.Load() < expected && time.Since(since) < 2*time.Second {
		time.Sleep(50 * time.Millisecond)
		if n := rec.delivered.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

func serverCPU(reps []*replica, redisPID int) float64 {
	if reps[0].pid == 0 {
		return selfCPUSeconds()
	}
	total := cpuSeconds(redisPID)
	for _, r := range reps {
		total += cpuSeconds(r.pid)
	}
	return total
}

func writeHeap(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	runtime.GC()
	pprof.WriteHeapProfile(f)
}
