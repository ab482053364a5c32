package gateway

import (
	"net/http"
	"sync"

	"switchboard/libs/server"
)

// addrLimit counts this replica's connections, WebSocket and event-stream,
// per client address, the address behind trusted proxies.
type addrLimit struct {
	// Read-only after construction.
	max     int // 0: no limit
	proxies server.TrustedProxies

	// Guarded by mu.
	mu    sync.Mutex
	count map[string]int
}

func newAddrLimit(max int, proxies server.TrustedProxies) *addrLimit {
	return &addrLimit{max: max, proxies: proxies, count: make(map[string]int)}
}

// acquire counts a connection of r's client, unless the client holds max
// connections already. The address it returns is the one to release when
// the connection ends.
func (l *addrLimit) acquire(r *http.Request) (string, bool) {
	if l.max == 0 {
		return "", true
	}
	addr := l.proxies.ClientAddress(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[addr] >= l.max {
		return "", false
	}
	l.count[addr]++
	return addr, true
}

// release uncounts a connection that acquire counted.
func (l *addrLimit) release(addr string) {
	if addr == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[addr]--; l.count[addr] <= 0 {
		delete(l.count, addr)
	}
}

// refuseAddress answers a connection over the per-address limit: 429
// before any upgrade, so the client sees an HTTP status, not a close code.
func refuseAddress(w http.ResponseWriter) {
	http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
}

// limitAddress serves next, which holds its connection until it returns
// (the event stream), only while the client is within the per-address
// limit.
func (g *Gateway) limitAddress(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr, ok := g.addrs.acquire(r)
		if !ok {
			refuseAddress(w)
			return
		}
		defer g.addrs.release(addr)
		next(w, r)
	}
}
