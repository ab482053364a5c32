package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/gatewayclient"
	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/proctest"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/internal/fakeauth"
)

const credential = "fault-test-credential"

// requestTimeout is every replica's GATEWAY_REQUEST_TIMEOUT: the bound on
// a publish's acknowledgement by Redis.
const requestTimeout = time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveBuilds()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// stack is one test's Redis, fake auth and replicas.
type stack struct {
	t     *testing.T
	redis *redistest.Server
	auth  *fakeauth.Auth
	env   []string
}

func newStack(t *testing.T, env ...string) *stack {
	t.Helper()
	a, err := fakeauth.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return &stack{t: t, redis: redistest.Start(t), auth: a, env: env}
}

// replica is one gateway process.
type replica struct {
	proc *proctest.Proc
	addr string // HTTP
}

func (s *stack) replica() *replica {
	t := s.t
	t.Helper()
	r := &replica{addr: proctest.FreeAddr(t)}
	env := append([]string{
		"GATEWAY_HTTP_ADDR=" + r.addr, "GATEWAY_GRPC_ADDR=" + proctest.FreeAddr(t), "GATEWAY_METRICS_ADDR=127.0.0.1:0",
		"AUTH_ADDR=" + s.auth.Addr, "GATEWAY_AUTH_CREDENTIAL=" + fakeauth.Credential,
		"REDIS_URL=" + s.redis.URL(), "GATEWAY_SERVICE_CREDENTIAL=" + credential,
		"GATEWAY_LOG_LEVEL=error", "GATEWAY_DRAIN=10ms", "GATEWAY_REQUEST_TIMEOUT=" + requestTimeout.String(),
		"GATEWAY_RATE=10000", "GATEWAY_BURST=10000"}, s.env...)
	r.proc = proctest.Start(t, proctest.Build(t, "gateway"), env...)
	r.proc.WaitHTTP(t, "http://"+r.addr+"/readyz", 15*time.Second)
	return r
}

// kill ends the replica with SIGKILL and waits for it.
func (r *replica) kill() { r.proc.Kill() }

func (r *replica) ws() string { return "ws://" + r.addr + "/ws" }

func poll(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publishOnce posts one message with key to r.
func publishOnce(ctx context.Context, r *replica, room string, seq int, key string) (protocol.PublishResult, error) {
	body, _ := json.Marshal(map[string]any{"room": room, "data": map[string]int{"seq": seq}, "idempotency_key": key})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.addr+"/v1/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return protocol.PublishResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return protocol.PublishResult{}, fmt.Errorf("publish: %s", resp.Status)
	}
	var res protocol.PublishResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	return res, err
}

// publisher publishes numbered messages and records the acknowledged ones.
type publisher struct {
	room    string
	targets []*replica
	mu      sync.Mutex
	acked   map[int]protocol.PublishResult
	next    int
}

func newPublisher(room string, targets ...*replica) *publisher {
	return &publisher{room: room, targets: targets, acked: make(map[int]protocol.PublishResult)}
}

// publish sends the next message, retrying with the same key on the
// replicas in turn for up to limit; it reports whether it was acknowledged.
func (p *publisher) publish(limit time.Duration) bool {
	p.mu.Lock()
	p.next++
	seq := p.next
	p.mu.Unlock()
	key := fmt.Sprintf("%s-%d", p.room, seq)
	deadline := time.Now().Add(limit)
	for i := 0; time.Now().Before(deadline); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		res, err := publishOnce(ctx, p.targets[i%len(p.targets)], p.room, seq, key)
		cancel()
		if err == nil {
			p.mu.Lock()
			p.acked[seq] = res
			p.mu.Unlock()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (p *publisher) run(n int, every time.Duration) {
	for range n {
		p.publish(15 * time.Second)
		time.Sleep(every)
	}
}

func (p *publisher) ackedSet() map[int]protocol.PublishResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]protocol.PublishResult, len(p.acked))
	for k, v := range p.acked {
		out[k] = v
	}
	return out
}

// receiver is one client in a room.
type receiver struct {
	client *gatewayclient.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	seqs      []int
	recovered []bool // every recovery reported for the room
	connected int
}

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

func (s *stack) receiver(user, room string, urls ...string) *receiver {
	t := s.t
	t.Helper()
	s.auth.Grant(user, room[len(protocol.ConversationPrefix):])
	rc := &receiver{}
	rc.client = gatewayclient.New(gatewayclient.Options{
		URLs: urls, Tokens: staticToken(s.auth.Issue(user, "s-"+user, time.Hour)),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnMessage: func(m gatewayclient.Message) {
			if m.Room != room {
				return
			}
			var d struct{ Seq int }
			json.Unmarshal(m.Data, &d)
			rc.mu.Lock()
			rc.seqs = append(rc.seqs, d.Seq)
			rc.mu.Unlock()
		},
		OnEvent: func(e gatewayclient.Event) {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if ok, in := e.Recovery[room]; in {
				rc.recovered = append(rc.recovered, ok)
			}
			if e.State == gatewayclient.StateConnected {
				rc.connected++
			}
		},
	})
	if err := rc.client.Join(context.Background(), room); err != nil {
		t.Fatal(err)
	}
	rc.start()
	t.Cleanup(rc.stop)
	poll(t, "receiver joined", 10*time.Second, func() bool {
		_, err := rc.client.Ping(context.Background())
		return err == nil
	})
	return rc
}

func (rc *receiver) start() {
	ctx, cancel := context.WithCancel(context.Background())
	rc.cancel, rc.done = cancel, make(chan struct{})
	go func() {
		defer close(rc.done)
		rc.client.Run(ctx)
	}()
}

func (rc *receiver) stop() {
	rc.cancel()
	<-rc.done
}

// connections returns how many connections the client reported.
func (rc *receiver) connections() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.connected
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.seqs)
}

// flagged reports whether the client was ever told a recovery failed.
func (rc *receiver) flagged() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, ok := range rc.recovered {
		if !ok {
			return true
		}
	}
	return false
}

// summary is one scenario's outcome.
type summary struct {
	Scenario    string  `json:"scenario"`
	Acked       int     `json:"acked"`
	Receivers   int     `json:"receivers"`
	Lost        int     `json:"acked_but_lost"`
	Flagged     bool    `json:"loss_flagged"`
	Duplicates  int     `json:"duplicates"`
	Order       int     `json:"order_violations"`
	RecoveryMS  float64 `json:"recovery_ms"`
	Recoveries  int     `json:"recoveries_reported"`
	Unrecovered int     `json:"recoveries_failed"`
}

// account waits (bounded) until every receiver holds every acknowledged
// message, then counts losses, duplicates and order violations.
// wait bounds the waiting; a scenario that expects losses waits less.
func account(t *testing.T, name string, p *publisher, rcs []*receiver, recovery, wait time.Duration) summary {
	t.Helper()
	acked := p.ackedSet()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		all := true
		for _, rc := range rcs {
			if missing(rc, acked) > 0 {
				all = false
			}
		}
		if all {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := summary{Scenario: name, Acked: len(acked), Receivers: len(rcs), RecoveryMS: float64(recovery.Microseconds()) / 1000}
	for _, rc := range rcs {
		s.Lost += missing(rc, acked)
		rc.mu.Lock()
		seen := map[int]bool{}
		prev := 0
		for _, seq := range rc.seqs {
			if seen[seq] {
				s.Duplicates++
			}
			seen[seq] = true
			if seq < prev {
				s.Order++
			}
			prev = max(prev, seq)
		}
		for _, ok := range rc.recovered {
			s.Recoveries++
			if !ok {
				s.Unrecovered++
			}
		}
		rc.mu.Unlock()
		s.Flagged = s.Flagged || rc.flagged()
	}
	b, _ := json.Marshal(s)
	t.Logf("%s: acked %d, lost %d (flagged %v), duplicates %d, order violations %d, recovery %.1f ms",
		name, s.Acked, s.Lost, s.Flagged, s.Duplicates, s.Order, s.RecoveryMS)
	t.Logf("summary %s", b)
	return s
}

// ackedIn returns the acknowledged messages published in another epoch
// than before.
func ackedIn(acked map[int]protocol.PublishResult, notEpoch string) map[int]protocol.PublishResult {
	out := make(map[int]protocol.PublishResult)
	for seq, res := range acked {
		if res.Epoch != notEpoch {
			out[seq] = res
		}
	}
	return out
}

func missing(rc *receiver, acked map[int]protocol.PublishResult) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := make(map[int]bool, len(rc.seqs))
	for _, s := range rc.seqs {
		seen[s] = true
	}
	n := 0
	for seq := range acked {
		if !seen[seq] {
			n++
		}
	}
	return n
}

// caughtUp waits (bounded) until every receiver holds at least n messages
// and returns how long that took since start; account then says what is
// missing.
func caughtUp(t *testing.T, rcs []*receiver, n int, start time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		all := true
		for _, rc := range rcs {
			all = all && rc.count() >= n
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
