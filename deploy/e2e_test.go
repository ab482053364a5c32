package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchboard/libs/authclient"
	"switchboard/libs/cacheclient"
	"switchboard/libs/gatewayclient"
	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/proctest"
	"switchboard/libs/redistest"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// Sizes of the end-to-end scenario.
const (
	e2eClients     = 6  // two per gateway
	e2eEach        = 20 // messages each client publishes before the stop
	e2eAfter       = 10 // messages each client publishes after its move
	e2eBackend     = 60 // messages the backend publishes around the stop
	e2eStopAfter   = 15 // backend messages acknowledged before the stop
	e2eSettle      = 20 * time.Second
	e2eHealthLimit = 30 * time.Second
	e2eDrain       = "300ms" // GATEWAY_DRAIN; the default is 10s
	backendName    = "backend"
	// e2eQuiet is how long every client must keep holding exactly the
	// messages published, for a late duplicate to show.
	e2eQuiet = 300 * time.Millisecond
)

// topology is the compose file's services as processes on loopback.
type topology struct {
	cred      string
	authGRPC  []string
	authHTTP  []string
	cacheGRPC string
	gateways  []*gatewayProc
}

type gatewayProc struct {
	proc    *proctest.Proc
	http    string
	metrics string // host:port of the metrics listener
}

func (g *gatewayProc) ws() string { return "ws://" + g.http + "/ws" }

// connections returns the gateway's switchboard_gateway_connections gauge.
func (g *gatewayProc) connections(t *testing.T) int {
	t.Helper()
	for line := range bytes.Lines(scrape(t, g.metrics)) {
		v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("switchboard_gateway_connections "))
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			t.Fatalf("gateway %s: switchboard_gateway_connections %q: %v", g.http, v, err)
		}
		return int(n)
	}
	t.Fatalf("gateway %s: no switchboard_gateway_connections in /metrics", g.http)
	return 0
}

// startTopology starts Redis, two auth replicas sharing a signing key
// file, one cache and three gateways, with the variables the compose file
// sets (addresses on loopback, a random service credential).
func startTopology(t *testing.T) *topology {
	t.Helper()
	redis := redistest.Start(t)
	top := &topology{cred: randomHex(t, 24)}
	authBin, cacheBin, gatewayBin := proctest.Build(t, "auth"), proctest.Build(t, "cache"), proctest.Build(t, "gateway")

	keyFile := filepath.Join(t.TempDir(), "signing.pem")
	key, err := exec.Command(authBin, "genkey").Output()
	if err != nil {
		t.Fatalf("switchboard-auth genkey: %v", err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	var procs []*proctest.Proc
	for range 2 {
		grpcAddr, httpAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
		top.authGRPC = append(top.authGRPC, grpcAddr)
		top.authHTTP = append(top.authHTTP, httpAddr)
		procs = append(procs, proctest.Start(t, authBin,
			"AUTH_GRPC_ADDR="+grpcAddr, "AUTH_HTTP_ADDR="+httpAddr, "AUTH_METRICS_ADDR="+proctest.FreeAddr(t),
			"REDIS_URL="+redis.URL(), "AUTH_REDIS_URL=",
			"AUTH_SIGNING_KEY_FILE="+keyFile, "AUTH_SERVICE_CREDENTIAL="+top.cred,
			"AUTH_LOG_LEVEL=warn",
			// Cheap hashes: the test logs six users in, it does not
			// measure password hashing.
			"AUTH_ARGON2_MEMORY=1MiB", "AUTH_ARGON2_TIME=1"))
	}
	top.cacheGRPC = proctest.FreeAddr(t)
	procs = append(procs, proctest.Start(t, cacheBin,
		"CACHE_GRPC_ADDR="+top.cacheGRPC, "CACHE_HTTP_ADDR="+proctest.FreeAddr(t),
		"CACHE_SERVICE_CREDENTIAL="+top.cred, "CACHE_LOG_LEVEL=warn"))
	for _, p := range procs {
		p.WaitHealthy(t, e2eHealthLimit)
	}
	for i := range 3 {
		g := &gatewayProc{http: proctest.FreeAddr(t), metrics: proctest.FreeAddr(t)}
		// The compose file balances over auth replicas by DNS; here each
		// gateway names one replica, so that tokens issued by one are
		// validated by the other.
		g.proc = proctest.Start(t, gatewayBin,
			"GATEWAY_HTTP_ADDR="+g.http, "GATEWAY_GRPC_ADDR="+proctest.FreeAddr(t), "GATEWAY_METRICS_ADDR="+g.metrics,
			"AUTH_ADDR="+top.authGRPC[i%2], "GATEWAY_AUTH_CREDENTIAL="+top.cred,
			"REDIS_URL="+redis.URL(), "GATEWAY_SERVICE_CREDENTIAL="+top.cred,
			"GATEWAY_WEB_AUTH_URL=http://"+top.authHTTP[0], "GATEWAY_WEB_GATEWAY_URL=",
			"GATEWAY_DEBUG_ADDR=", "GATEWAY_LOG_LEVEL=warn",
			// Shorter than the default 10s so that the stop below
			// takes a moment, not ten seconds.
			"GATEWAY_DRAIN="+e2eDrain)
		top.gateways = append(top.gateways, g)
	}
	for _, g := range top.gateways {
		g.proc.WaitHealthy(t, e2eHealthLimit)
	}
	return top
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// dialAuth connects to one auth replica with the service credential.
func (top *topology) dialAuth(t *testing.T, i int) authv1.AuthServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(top.authGRPC[i],
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		server.WithCredential(top.cred, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv1.NewAuthServiceClient(conn)
}

// checkCache stores and reads one entry through libs/cacheclient.
func (top *topology) checkCache(t *testing.T) {
	t.Helper()
	c, err := cacheclient.New([]string{top.cacheGRPC}, cacheclient.Options{Credential: top.cred})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, "conversations", "e2e", []byte("cached"), time.Minute); err != nil {
		t.Fatalf("cache Set: %v", err)
	}
	it, err := c.Get(ctx, "conversations", "e2e")
	if err != nil || !it.Found || string(it.Value) != "cached" {
		t.Fatalf("cache Get = %+v, %v; want the value set", it, err)
	}
}

// e2eMsg is the data of every message of the scenario.
type e2eMsg struct {
	From string `json:"from"`
	Seq  int    `json:"seq"`
}

// member is one logged-in user's client in the room.
type member struct {
	name    string
	client  *gatewayclient.Client
	session *authclient.Session
	cancel  context.CancelFunc
	done    chan struct{}

	mu         sync.Mutex
	got        map[string][]int // per publisher, in arrival order
	closeCodes []int
	recovery   []bool
	reconnects int       // connected events after the first
	movedAt    time.Time // time of the last reconnect
	connected  chan struct{}
}

func (m *member) onMessage(room string) func(gatewayclient.Message) {
	return func(msg gatewayclient.Message) {
		if msg.Room != room {
			return
		}
		var d e2eMsg
		if json.Unmarshal(msg.Data, &d) != nil {
			return
		}
		m.mu.Lock()
		m.got[d.From] = append(m.got[d.From], d.Seq)
		m.mu.Unlock()
	}
}

func (m *member) onEvent(room string) func(gatewayclient.Event) {
	first := true
	return func(e gatewayclient.Event) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if e.CloseCode != 0 {
			m.closeCodes = append(m.closeCodes, e.CloseCode)
		}
		if ok, in := e.Recovery[room]; in {
			m.recovery = append(m.recovery, ok)
		}
		if e.State == gatewayclient.StateConnected {
			if first {
				first = false
				return
			}
			m.reconnects++
			m.movedAt = time.Now()
			select {
			case m.connected <- struct{}{}:
			default:
			}
		}
	}
}

// newMember creates the user, grants it the conversation, logs it in
// through auth and connects it to urls (round robin on reconnects).
func newMember(t *testing.T, top *topology, i int, convID string, urls []string) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin := top.dialAuth(t, i%2)
	email, password := fmt.Sprintf("agent%d@example.com", i), randomHex(t, 12)
	u, err := admin.CreateUser(ctx, &authv1.CreateUserRequest{Email: email, Password: password})
	if err != nil {
		t.Fatalf("CreateUser %s: %v", email, err)
	}
	if _, err := admin.GrantAccess(ctx, &authv1.GrantAccessRequest{UserId: u.GetUserId(), ConversationId: convID}); err != nil {
		t.Fatalf("GrantAccess: %v", err)
	}
	// Log in on the other replica than the one that created the user.
	sess, err := authclient.Login(ctx, top.dialAuth(t, (i+1)%2), email, password, authclient.Options{})
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	room := protocol.ConversationPrefix + convID
	m := &member{name: fmt.Sprintf("client%d", i), session: sess, got: map[string][]int{},
		connected: make(chan struct{}, 1)}
	m.client = gatewayclient.New(gatewayclient.Options{
		URLs: urls, Tokens: sess,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		OnMessage: m.onMessage(room), OnEvent: m.onEvent(room),
	})
	if err := m.client.Join(ctx, room); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	m.cancel, m.done = stop, make(chan struct{})
	go func() {
		defer close(m.done)
		m.client.Run(runCtx)
	}()
	t.Cleanup(m.stop)
	waitFor(t, m.name+" connected", 15*time.Second, func() bool {
		_, err := m.client.Ping(context.Background())
		return err == nil
	})
	return m
}

func (m *member) stop() {
	m.cancel()
	<-m.done
	m.session.Close()
}

// publish sends the messages numbered from to to, each acknowledged
// before the next.
func (m *member) publish(ctx context.Context, room string, from, to int) error {
	for seq := from; seq <= to; seq++ {
		data, _ := json.Marshal(e2eMsg{From: m.name, Seq: seq})
		key := fmt.Sprintf("%s-%d", m.name, seq)
		if _, err := m.client.PublishIdempotent(ctx, room, data, key); err != nil {
			return fmt.Errorf("%s publish %d: %w", m.name, seq, err)
		}
	}
	return nil
}

// publishAll has every member publish the messages numbered from to to
// at once, and fails unless each is acknowledged.
func publishAll(ctx context.Context, t *testing.T, members []*member, room string, from, to int) {
	t.Helper()
	errs := make(chan error, len(members))
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() { errs <- m.publish(ctx, room, from, to) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// holds reports whether m received exactly messages 1..want[from] of
// every publisher, in order; otherwise it says what differs, and final
// is set when no later arrival can mend it (a duplicate, a message out of
// order or one past what was published).
func (m *member) holds(want map[string]int) (final bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for from, n := range want {
		got := m.got[from]
		for i, seq := range got {
			if seq != i+1 {
				return true, fmt.Errorf("%s: %s's message %d arrived as number %d (duplicate, lost or out of order)",
					m.name, from, seq, i+1)
			}
		}
		if len(got) != n {
			return len(got) > n, fmt.Errorf("%s holds %d of %s's %d messages", m.name, len(got), from, n)
		}
	}
	return false, nil
}

// backend publishes through POST /v1/publish with the service credential,
// as an application backend does, retrying a message on the gateways in
// turn with the same idempotency key.
type backend struct {
	cred     string
	room     string
	gateways []*gatewayProc
	client   *http.Client
}

func (b *backend) publish(ctx context.Context, seq int) error {
	body, _ := json.Marshal(map[string]any{"room": b.room,
		"data": e2eMsg{From: backendName, Seq: seq}, "idempotency_key": fmt.Sprintf("backend-%d", seq)})
	var last error
	for i := range 3 * len(b.gateways) {
		g := b.gateways[i%len(b.gateways)]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+g.http+"/v1/publish", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+b.cred)
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("POST /v1/publish: %s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("backend message %d: %w", seq, last)
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHolds waits until every member holds want, or fails with what the
// first lagging member lacks, at once when it cannot be mended.
func waitHolds(t *testing.T, members []*member, want map[string]int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	for {
		var final bool
		var err error
		for _, m := range members {
			if final, err = m.holds(want); err != nil {
				break
			}
		}
		if err == nil {
			return time.Since(start)
		}
		if final {
			t.Fatalf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keepsHolding fails if any member stops holding exactly want within
// quiet: a duplicate that arrives after the last expected message.
func keepsHolding(t *testing.T, members []*member, want map[string]int, quiet time.Duration) {
	t.Helper()
	deadline := time.Now().Add(quiet)
	for {
		for _, m := range members {
			if _, err := m.holds(want); err != nil {
				t.Fatalf("after every message had arrived: %v", err)
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestComposeTopology runs the compose topology as processes on loopback
// (Redis, two auth replicas, a cache, three gateways on Redis). Six users,
// two per gateway, exchange numbered messages in one conversation; then
// one gateway is stopped with SIGTERM while a backend keeps publishing
// through another, and its clients move to the remaining gateways and
// recover what was published meanwhile from room history. Then every
// client publishes again, the moved ones through the gateways they moved
// to, one on each: every client ends with every acknowledged message
// once, in each publisher's order.
func TestComposeTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the services as processes")
	}
	top := startTopology(t)
	top.checkCache(t)

	convID := "e2e-" + randomHex(t, 4)
	room := protocol.ConversationPrefix + convID
	members := make([]*member, e2eClients)
	for i := range members {
		// Clients 2k and 2k+1 start on gateway k; 2k moves on to gateway
		// k+1 and 2k+1 to gateway k+2, so that the clients of a stopped
		// gateway spread over both others.
		k, next, last := i/2, 1, 2
		if i%2 == 1 {
			next, last = 2, 1
		}
		urls := []string{top.gateways[k].ws(), top.gateways[(k+next)%3].ws(), top.gateways[(k+last)%3].ws()}
		members[i] = newMember(t, top, i, convID, urls)
	}

	want := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range members {
		want[m.name] = e2eEach
	}
	publishAll(ctx, t, members, room, 1, e2eEach)
	took := waitHolds(t, members, want, e2eSettle)
	t.Logf("%d clients on 3 gateways hold all %d messages %v after the last acknowledgement",
		len(members), e2eClients*e2eEach, took.Round(time.Millisecond))

	stopped := top.gateways[0]
	be := &backend{cred: top.cred, room: room, gateways: []*gatewayProc{top.gateways[2], top.gateways[1]},
		client: &http.Client{Timeout: 5 * time.Second}}
	defer be.client.CloseIdleConnections()
	var stopAt time.Time
	var stopErr error
	var stopWG sync.WaitGroup
	for seq := 1; seq <= e2eBackend; seq++ {
		if seq == e2eStopAfter+1 {
			stopAt = time.Now()
			stopWG.Go(func() { stopErr = stopped.proc.Stop() })
		}
		if err := be.publish(ctx, seq); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopWG.Wait()
	if stopErr != nil {
		t.Fatal(stopErr)
	}
	want[backendName] = e2eBackend
	moved := members[:2]
	for _, m := range moved {
		select {
		case <-m.connected:
		case <-time.After(e2eSettle):
			t.Fatalf("%s did not reconnect after its gateway stopped", m.name)
		}
	}
	var reconnected time.Duration
	for _, m := range moved {
		m.mu.Lock()
		reconnected = max(reconnected, m.movedAt.Sub(stopAt))
		m.mu.Unlock()
	}
	caughtUp := waitHolds(t, members, want, e2eSettle)
	t.Logf("gateway stopped with SIGTERM (drain %s): its clients reconnected %v after the stop; "+
		"every client held all %d backend messages %v after the last acknowledgement, 0 lost, 0 duplicated",
		e2eDrain, reconnected.Round(time.Millisecond), e2eBackend, caughtUp.Round(time.Millisecond))

	for _, m := range moved {
		m.mu.Lock()
		codes, rec := m.closeCodes, m.recovery
		m.mu.Unlock()
		if !slices.Contains(codes, int(protocol.CloseRestarting)) {
			t.Errorf("%s saw close codes %v; want %d (restarting)", m.name, codes, protocol.CloseRestarting)
		}
		if len(rec) == 0 || slices.Contains(rec, false) {
			t.Errorf("%s recovery results %v; want only successes", m.name, rec)
		}
	}
	// The stopped gateway's process has exited, so the moved clients are
	// connected to the others: three connections on each.
	waitFor(t, "three connections on each remaining gateway", e2eSettle, func() bool {
		return top.gateways[1].connections(t) == 3 && top.gateways[2].connections(t) == 3
	})
	for _, m := range members {
		want[m.name] = e2eEach + e2eAfter
	}
	publishAll(ctx, t, members, room, e2eEach+1, e2eEach+e2eAfter)
	exchanged := waitHolds(t, members, want, e2eSettle)
	keepsHolding(t, members, want, e2eQuiet)
	t.Logf("after the move, %d clients (%d moved, one on each remaining gateway) each published %d more: "+
		"every client held all %d %v after the last acknowledgement, 0 lost, 0 duplicated",
		len(members), len(moved), e2eAfter, len(members)*e2eAfter, exchanged.Round(time.Millisecond))

	for _, m := range members[2:] {
		m.mu.Lock()
		n := m.reconnects
		m.mu.Unlock()
		if n != 0 {
			t.Errorf("%s on a running gateway reconnected %d times", m.name, n)
		}
	}
}
