package browsertest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// balancer stands for a load balancer without sticky sessions behind a
// proxy that refuses WebSockets: each request goes to the next replica in
// turn, and every upgrade is refused.
type balancer struct {
	backends []*httputil.ReverseProxy
	next     atomic.Uint64
	requests []atomic.Int64 // fallback requests (POST /sse/...) per replica
	refused  atomic.Int64   // WebSocket upgrades refused
}

func newBalancer(t *testing.T, targets []string) *balancer {
	t.Helper()
	b := &balancer{requests: make([]atomic.Int64, len(targets))}
	for _, target := range targets {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.FlushInterval = -1
		b.backends = append(b.backends, p)
	}
	return b
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		b.refused.Add(1)
		http.Error(w, "websockets are not allowed through this proxy", http.StatusForbidden)
		return
	}
	i := int(b.next.Add(1) % uint64(len(b.backends)))
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sse/") {
		b.requests[i].Add(1)
	}
	b.backends[i].ServeHTTP(w, r)
}

func TestFallbackWhenWebSocketsAreRefused(t *testing.T) {
	t.Parallel()
	proxy := httptest.NewUnstartedServer(nil)
	t.Cleanup(proxy.Close)
	proxyOrigin := "http://" + proxy.Listener.Addr().String()
	s := newStack(t, stackOptions{replicas: 2, origins: []string{proxyOrigin}})
	lb := newBalancer(t, []string{s.gateways[0].URL(), s.gateways[1].URL()})
	proxy.Config.Handler = lb
	proxy.Start()
	bobEmail := s.auth.addUser(t, "bob", demoConversation)
	b := newBrowser(t)

	agent := b.newPage(t, "agent-behind-proxy")
	agent.login(proxyOrigin+"/", demoEmail, demoPassword)
	if tr := agent.text("transport"); tr != "sse" {
		t.Fatalf("transport %q behind a proxy refusing WebSockets, want sse", tr)
	}
	bob := b.newPage(t, "bob")
	bob.login(s.pageURL(1), bobEmail, testPassword)
	if tr := bob.text("transport"); tr != "websocket" {
		t.Fatalf("bob's transport %q, want websocket", tr)
	}

	agent.openFromList(demoConversation)
	bob.openFromList(demoConversation)
	agent.send("sent over the fallback")
	bob.waitMessage("sent over the fallback", 10*time.Second)
	agent.waitMessage("sent over the fallback", 10*time.Second)
	bob.send("sent over a websocket")
	agent.waitMessage("sent over a websocket", 10*time.Second)
	agent.waitFor("a latency grade", `['excellent', 'good', 'poor'].includes(document.getElementById('quality').dataset.quality)`, 15*time.Second)

	if lb.refused.Load() == 0 {
		t.Error("the page never tried a WebSocket")
	}
	for i := range lb.requests {
		if n := lb.requests[i].Load(); n == 0 {
			t.Errorf("replica %d received no fallback request: the balancer spread nothing", i+1)
		}
	}
	agent.screenshot("fallback")
}
