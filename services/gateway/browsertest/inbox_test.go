package browsertest

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/libs/proctest"
	"switchboard/libs/redistest"
)

// stackOptions shape one test's processes.
type stackOptions struct {
	replicas    int           // gateway replicas; at least 1
	redis       bool          // share a real redis-server (forced when replicas > 1)
	accessTTL   time.Duration // AUTH_ACCESS_TTL; zero: auth's default
	expiryGrace time.Duration // GATEWAY_EXPIRY_GRACE; zero: the gateway's default
	// origins are more page origins (a proxy's) for auth's CORS list and
	// the gateways' allowed origins.
	origins []string
}

// stack is one test's auth and gateway replicas; each replica serves the
// demo page.
type stack struct {
	auth     *authService
	gateways []*gatewayReplica
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	s := &stack{}
	addrs := make([]string, opts.replicas)
	origins := slices.Clone(opts.origins)
	for i := range addrs {
		addrs[i] = proctest.FreeAddr(t)
		origins = append(origins, "http://"+addrs[i])
	}
	patterns := make([]string, len(origins))
	for i, o := range origins {
		patterns[i] = hostPattern(o)
	}
	s.auth = startAuth(t, authOptions{accessTTL: opts.accessTTL, origins: origins})

	var rs *redistest.Server
	if opts.redis || opts.replicas > 1 {
		rs = redistest.Start(t)
	}
	for _, addr := range addrs {
		s.gateways = append(s.gateways, startGateway(t, s.auth, gatewayOptions{
			addr: addr, redis: rs, expiryGrace: opts.expiryGrace, origins: patterns,
		}))
	}
	return s
}

// pageURL is the demo page as replica i serves it.
func (s *stack) pageURL(i int) string { return s.gateways[i].URL() + "/" }

// gauge reads one unlabelled metric of a replica.
func gauge(t *testing.T, g *gatewayReplica, name string) string {
	t.Helper()
	res, err := http.Get("http://" + g.metrics + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return ""
}

func TestTwoAgentsOnTwoReplicas(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{replicas: 2})
	bobEmail := s.auth.addUser(t, "bob", demoConversation)
	b := newBrowser(t)

	agent := b.newPage(t, "agent")
	agent.login(s.pageURL(0), demoEmail, demoPassword)
	bob := b.newPage(t, "bob")
	bob.login(s.pageURL(1), bobEmail, testPassword)
	for i, g := range s.gateways {
		if v := gauge(t, g, "switchboard_gateway_connections"); v != "1" {
			t.Fatalf("replica %d holds %s connections, want 1 (one agent each)", i, v)
		}
	}

	agent.openFromList(demoConversation)
	bob.open(demoConversation)
	bob.waitOpen(demoConversation)
	agent.send("hello from the agent on replica 1")
	bob.waitMessage("hello from the agent on replica 1", 10*time.Second)
	bob.send("hello back from bob on replica 2")
	agent.waitMessage("hello back from bob on replica 2", 10*time.Second)
	agent.waitMessage("hello from the agent on replica 1", 10*time.Second)

	for _, p := range []*page{agent, bob} {
		if tr := p.text("transport"); tr != "websocket" {
			t.Errorf("%s: transport %q, want websocket", p.name, tr)
		}
		p.waitFor("a latency grade", `['excellent', 'good', 'poor'].includes(document.getElementById('quality').dataset.quality)`, 15*time.Second)
		p.screenshot("conversation")
	}
}

func TestReconnectAfterReplicaRestart(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{replicas: 2})
	room := "conversation:" + demoConversation
	b := newBrowser(t)
	agent := b.newPage(t, "agent")
	agent.login(s.pageURL(0), demoEmail, demoPassword)
	agent.open(demoConversation)
	agent.waitOpen(demoConversation)
	s.gateways[1].publish(t, room, "customer", "before the cut")
	agent.waitMessage("before the cut", 10*time.Second)

	s.gateways[0].Kill()
	agent.waitFor("disconnected", `document.getElementById('state').dataset.state !== 'connected'`, 10*time.Second)
	agent.screenshot("disconnected")
	missed := []string{"while disconnected 1", "while disconnected 2", "while disconnected 3"}
	for _, text := range missed {
		s.gateways[1].publish(t, room, "customer", text)
	}
	s.gateways[0].Restart(t)
	s.gateways[0].WaitHTTP(t, s.gateways[0].URL()+"/readyz", readyWait)

	agent.waitConnected(30 * time.Second)
	// The rejoin names the last position seen; the gateway replays what
	// was published meanwhile before answering recovered.
	agent.waitFor("the recovery notice", `document.getElementById('notice').dataset.recovered !== undefined`, 10*time.Second)
	if got := agent.text("notice"); strings.Contains(got, "may be missing") {
		t.Errorf("notice %q after a recovery the gateway answered", got)
	}
	if got := eval[string](agent, `document.getElementById('notice').dataset.recovered`); got != "true" {
		t.Errorf("recovered %q, want true", got)
	}
	s.gateways[1].publish(t, room, "customer", "after the reconnect")
	agent.waitMessage("after the reconnect", 10*time.Second)

	want := append(append([]string{"before the cut"}, missed...), "after the reconnect")
	got := eval[[]string](agent, `[...document.querySelectorAll('#messages .text')].map((e) => e.textContent)`)
	if !slices.Equal(got, want) {
		t.Errorf("messages on the page %q, want %q (in order, each once)", got, want)
	}
	offsets := eval[[]int](agent, `[...document.querySelectorAll('#messages li')].map((e) => Number(e.dataset.offset))`)
	for i := 1; i < len(offsets); i++ {
		if offsets[i] <= offsets[i-1] {
			t.Errorf("offsets %v do not increase", offsets)
			break
		}
	}
	if got := eval[string](agent, `String(window.switchboardClient && window.switchboardClient.recovery.get('`+room+`')?.recovered)`); got != "true" {
		t.Errorf("client.recovery for %s: %q, want true", room, got)
	}
	agent.screenshot("reconnected")
}

func TestStaysConnectedAcrossTokenExpiries(t *testing.T) {
	t.Parallel()
	const ttl = time.Minute // auth's shortest access-token lifetime
	s := newStack(t, stackOptions{replicas: 1, accessTTL: ttl, expiryGrace: 2 * time.Second})
	b := newBrowser(t)
	agent := b.newPage(t, "agent")
	start := time.Now()
	agent.login(s.pageURL(0), demoEmail, demoPassword)
	agent.open(demoConversation)
	agent.waitOpen(demoConversation)

	// Past the expiry of the first three tokens, each of which would have
	// closed the connection two seconds later without an in-band refresh.
	past := time.Until(start.Add(2*ttl + 10*time.Second))
	agent.waitFor("three refreshes", `Number(document.getElementById('refreshes').textContent) >= 3`, 2*ttl+30*time.Second)
	if past > 0 {
		time.Sleep(time.Until(start.Add(2*ttl + 10*time.Second)))
	}
	connects := eval[string](agent, `document.getElementById('state').dataset.connects`)
	if connects != "1" || agent.text("state") != "connected" {
		t.Fatalf("state %q after %s connects, want connected once throughout", agent.text("state"), connects)
	}
	agent.send("still here after three tokens")
	agent.waitMessage("still here after three tokens", 10*time.Second)
	agent.screenshot("after-expiries")
}

func TestAgentWithoutAccessCannotOpen(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{replicas: 1})
	carolEmail := s.auth.addUser(t, "carol")
	b := newBrowser(t)

	carol := b.newPage(t, "carol")
	carol.login(s.pageURL(0), carolEmail, testPassword)
	carol.waitFor("the conversation list", `document.getElementById('conversations').dataset.loaded === 'true'`, 10*time.Second)
	if n := eval[int](carol, `document.querySelectorAll('#conversations button').length`); n != 0 {
		t.Fatalf("an agent without access is offered %d conversations", n)
	}
	carol.open(demoConversation)
	carol.waitFor("the refusal", `document.getElementById('error').textContent.startsWith('forbidden')`, 10*time.Second)
	if !eval[bool](carol, `document.getElementById('conversation').hidden`) {
		t.Fatal("the conversation is shown to an agent without access")
	}
	carol.screenshot("forbidden")

	agent := b.newPage(t, "agent")
	agent.login(s.pageURL(0), demoEmail, demoPassword)
	agent.openFromList(demoConversation)
	agent.send("for members only")
	agent.waitMessage("for members only", 10*time.Second)
	if n := eval[int](carol, `document.querySelectorAll('#messages li').length`); n != 0 {
		t.Fatalf("the agent without access lists %d messages", n)
	}
}
