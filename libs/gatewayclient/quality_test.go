package gatewayclient_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient"
	"switchboard/libs/gatewayclient/protocol"
)

// pingGateway is a fake gateway that answers every request. Once silence
// is closed, its first connection stops answering pings (it still reads
// them), and once drop is closed that connection closes with the
// "restarting" code. Later connections answer every ping.
type pingGateway struct {
	silence, drop chan struct{}
	conns         atomic.Int32
	answered      atomic.Int32 // pings answered on the first connection
}

func (g *pingGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	first := g.conns.Add(1) == 1
	c := fakeConn{ws: ws, ctx: r.Context()}
	auth, _ := json.Marshal(protocol.AuthResult{User: "u1", ExpiresAt: time.Now().Add(time.Hour).UnixMilli()})
	if c.send(protocol.Frame{Type: protocol.TypeConnected, Result: auth}) != nil {
		return
	}
	if first {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-g.drop:
				ws.Close(websocket.StatusCode(protocol.CloseRestarting), "restarting")
			case <-stop:
			}
		}()
	}
	for {
		_, b, err := ws.Read(c.ctx)
		if err != nil {
			return
		}
		var req protocol.Request
		if json.Unmarshal(b, &req) != nil {
			return
		}
		if first && req.Type == protocol.TypePing {
			if closed(g.silence) {
				continue
			}
			g.answered.Add(1)
		}
		if c.reply(req.ID, protocol.PingResult{TS: req.TS}) != nil {
			return
		}
	}
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// qualities records the quality events a client reports, in order.
type qualities struct {
	mu     sync.Mutex
	grades []gatewayclient.Quality
}

func (q *qualities) onEvent(e gatewayclient.Event) {
	if !e.QualityChanged {
		return
	}
	q.mu.Lock()
	q.grades = append(q.grades, e.Quality)
	q.mu.Unlock()
}

func (q *qualities) list() []gatewayclient.Quality {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.grades)
}

// waitFor waits until a quality event reports want, and returns how many
// events there were then.
func (q *qualities) waitFor(t *testing.T, want gatewayclient.Quality) int {
	t.Helper()
	var n int
	poll(t, "quality "+want.String(), func() bool {
		l := q.list()
		n = len(l)
		return slices.Contains(l, want)
	})
	return n
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Quality follows the pings and is reported once per change: graded by
// the answered pings, poor as soon as one goes unanswered (and not again
// while the next ones do), unknown when the connection ends, graded again
// by the next connection's first answer.
func TestQualityFollowsPings(t *testing.T) {
	const timeout = 200 * time.Millisecond
	g := &pingGateway{silence: make(chan struct{}), drop: make(chan struct{})}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	q := &qualities{}
	c := gatewayclient.New(gatewayclient.Options{
		URL: "ws" + srv.URL[len("http"):], Tokens: staticToken("tok"), OnEvent: q.onEvent,
		PingInterval: 20 * time.Millisecond, RequestTimeout: timeout,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	if d, got := c.Latency(); d != 0 || got != gatewayclient.QualityUnknown {
		t.Fatalf("before Run: latency %s, quality %s; want 0, unknown", d, got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	poll(t, "5 answered pings", func() bool { return g.answered.Load() >= 5 })
	if d, got := c.Latency(); d <= 0 || got == gatewayclient.QualityUnknown || got == gatewayclient.QualityPoor {
		t.Fatalf("with pings answered on loopback: latency %s, quality %s", d, got)
	}
	close(g.silence)
	n := q.waitFor(t, gatewayclient.QualityPoor)
	if d, got := c.Latency(); d < timeout || got != gatewayclient.QualityPoor {
		t.Fatalf("after an unanswered ping: latency %s, quality %s; want at least %s, poor", d, got, timeout)
	}
	time.Sleep(3 * timeout) // more unanswered pings change nothing
	if l := q.list(); len(l) != n {
		t.Fatalf("quality events %v: more after poor while pings went unanswered", l)
	}
	close(g.drop)
	poll(t, "a graded second connection", func() bool {
		l := q.list()
		return g.conns.Load() >= 2 && len(l) >= n+2
	})

	grades := q.list()
	for i := 1; i < len(grades); i++ {
		if grades[i] == grades[i-1] {
			t.Fatalf("quality events %v: %s reported twice in a row", grades, grades[i])
		}
	}
	poor := slices.Index(grades, gatewayclient.QualityPoor)
	if poor < 1 || poor+2 >= len(grades) || grades[poor+1] != gatewayclient.QualityUnknown {
		t.Fatalf("quality events %v: want answered grades, poor, unknown, then a grade again", grades)
	}
}
