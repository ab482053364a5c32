package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/proctest"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/internal/fakeauth"
)

// exitBound is how long after the drain period the process may take to
// exit: the servers' shutdown grace (5 s) and the broker's close, with room
// for a loaded machine and the race detector.
const exitBound = 10 * time.Second

// The gateway binary, sent SIGTERM, drains like a lame duck: /readyz answers
// 503 and new upgrades are refused while every open connection is closed
// with the restarting code, the closes spread over GATEWAY_DRAIN rather
// than all at once, and the process exits 0 within the drain plus a bound.
func TestSIGTERMDrainsProcess(t *testing.T) {
	const (
		drain   = 2 * time.Second
		clients = 20
	)
	t.Cleanup(proctest.RemoveBuilds) // runs after the process is stopped
	a := startAuth(t)
	rs := redistest.Start(t)
	addr := proctest.FreeAddr(t)
	p := proctest.Start(t, proctest.Build(t, "gateway"),
		"GATEWAY_HTTP_ADDR="+addr, "GATEWAY_GRPC_ADDR="+proctest.FreeAddr(t), "GATEWAY_METRICS_ADDR=127.0.0.1:0",
		"AUTH_ADDR="+a.Addr, "GATEWAY_AUTH_CREDENTIAL="+fakeauth.Credential,
		"REDIS_URL="+rs.URL(), "GATEWAY_SERVICE_CREDENTIAL="+serviceCred,
		"GATEWAY_LOG_LEVEL=warn", "GATEWAY_DRAIN="+drain.String())
	r := &replica{http: "http://" + addr, ws: "ws://" + addr + "/ws"}
	p.WaitHTTP(t, r.http+"/readyz", time.Minute)

	conns := make([]*client, clients)
	for i := range conns {
		conns[i] = dial(t, r, a.Issue(fmt.Sprintf("user%d", i), "s", time.Hour))
		conns[i].connected()
	}
	closedAt := make(chan time.Time, clients)
	for _, c := range conns {
		go func() {
			<-c.done
			closedAt <- time.Now()
		}()
	}

	signalled := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop() }() // SIGTERM, then waits for the exit

	poll(t, "/readyz answering 503 while draining", func() bool {
		code, err := getStatus(r.http + "/readyz")
		if err != nil && !p.Running() {
			t.Fatalf("the process exited before /readyz answered 503: %v", err)
		}
		return code == http.StatusServiceUnavailable
	})
	refusedUpgrade(t, r, a.Issue("late", "s", time.Hour))

	times := make([]time.Time, 0, clients)
	for range clients {
		select {
		case at := <-closedAt:
			times = append(times, at)
		case <-time.After(drain + exitBound):
			t.Fatalf("%d of %d connections closed by the drain", len(times), clients)
		}
	}
	for i, c := range conns {
		if got := websocket.CloseStatus(c.err); got != websocket.StatusCode(protocol.CloseRestarting) {
			t.Errorf("connection %d: close code %d (%v), want %d", i, got, c.err, protocol.CloseRestarting)
		}
	}
	// The drain closes connection i at i/clients of the period, so the
	// first and last closes are (clients-1)/clients of it apart; a quarter
	// leaves room for scheduling and still tells spreading from a burst.
	first, last := slices.MinFunc(times, time.Time.Compare), slices.MaxFunc(times, time.Time.Compare)
	if spread := last.Sub(first); spread < drain/4 {
		t.Errorf("closes spread over %v, want at least %v of the %v drain", spread, drain/4, drain)
	}

	select {
	case <-p.Exited():
	case <-time.After(time.Until(signalled.Add(drain + exitBound))):
		t.Fatalf("the process still runs %v after SIGTERM", drain+exitBound)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	t.Logf("closes spread over %v; exited %v after SIGTERM", last.Sub(first), time.Since(signalled).Round(time.Millisecond))
}

// getStatus returns the status of GET url, on a connection of its own.
func getStatus(url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// refusedUpgrade fails the test unless an upgrade with a valid token is
// answered 503: a draining replica admits no new connection.
func refusedUpgrade(t *testing.T, r *replica, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, r.ws, &websocket.DialOptions{HTTPHeader: bearer(token)})
	if err == nil {
		ws.CloseNow()
		t.Fatal("a new connection was accepted while draining")
	}
	if resp == nil {
		t.Fatalf("upgrade while draining: %v, want a 503 answer", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade while draining: %s, want 503", resp.Status)
	}
}
