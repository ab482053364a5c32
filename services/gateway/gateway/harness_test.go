package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"switchboard/libs/gatewayclient/protocol"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/gateway"
	"switchboard/services/gateway/internal/fakeauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	serviceCred = "publish-credential"
	wait        = 10 * time.Second // deadline of every poll
)

// startAuth starts a fake auth service stopped at cleanup.
func startAuth(t *testing.T) *fakeauth.Auth {
	t.Helper()
	a, err := fakeauth.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// replica is one gateway served on loopback.
type replica struct {
	g        *gateway.Gateway
	http     string // http://host:port
	metrics  string // http://host:port of the metrics listener
	ws       string // ws://host:port/ws
	grpcAddr string
	stop     func() error // cancels Serve and returns its error
}

func testConfig() gateway.Config {
	return gateway.Config{
		ServiceCredential: serviceCred,
		MaxConnections:    1000, MaxPerUser: 20,
		Drain:                200 * time.Millisecond,
		AuthCacheEntries:     1000,
		AuthCacheTTL:         time.Minute,
		CompressionThreshold: 2 << 10,
	}
}

// startReplica serves a gateway until cleanup. redisURL empty: in-process
// broker.
func startReplica(t *testing.T, a *fakeauth.Auth, redisURL string, mod func(*gateway.Config)) *replica {
	t.Helper()
	cfg := testConfig()
	cfg.RedisURL = redisURL
	cfg.RedisPrefix = "test:"
	if mod != nil {
		mod(&cfg)
	}
	conn, err := a.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g, err := gateway.New(cfg, gateway.Options{Auth: authv1.NewAuthServiceClient(conn)})
	if err != nil {
		t.Fatal(err)
	}
	hl := listen(t)
	gl := listen(t)
	ml := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ctx, hl, gl, ml) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-errc })
		return serveErr
	}
	t.Cleanup(func() { stop() })
	r := &replica{g: g, http: "http://" + hl.Addr().String(), ws: "ws://" + hl.Addr().String() + "/ws",
		metrics: "http://" + ml.Addr().String(), grpcAddr: gl.Addr().String(), stop: stop}
	poll(t, "replica ready and watching revocations", func() bool {
		resp, err := http.Get(r.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && a.Watchers() > 0
	})
	return r
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// poll waits until cond holds, failing the test after the deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// client is a raw WebSocket client speaking the protocol.
type client struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan protocol.Frame
	done   chan struct{}
	err    error // set before done closes
	ids    atomic.Uint64

	backlog []protocol.Frame // frames read but not yet matched
}

type dialOpt struct {
	header http.Header
	query  string
	noRead bool // never read: a slow consumer
}

// dial connects with a bearer token in the header (empty: none).
func dial(t *testing.T, r *replica, token string) *client {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return dialWith(t, r, dialOpt{header: h})
}

func dialWith(t *testing.T, r *replica, o dialOpt) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dopts := &websocket.DialOptions{HTTPHeader: o.header}
	if o.noRead {
		dopts.HTTPClient = smallWindowClient()
	}
	ws, _, err := websocket.Dial(ctx, r.ws+o.query, dopts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{t: t, ws: ws, frames: make(chan protocol.Frame, 4096), done: make(chan struct{})}
	if !o.noRead {
		go c.readLoop()
	} else {
		close(c.frames)
	}
	t.Cleanup(func() {
		ws.CloseNow()
		if !o.noRead {
			<-c.done
		}
	})
	return c
}

// smallWindowClient dials with a 4 KiB receive buffer, so that a client
// that never reads fills the server's queue after kilobytes, not megabytes.
func smallWindowClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return err
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func (c *client) readLoop() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var f protocol.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.err = err
			return
		}
		c.frames <- f
	}
}

// send writes a request, giving it an id unless it has one.
func (c *client) send(req protocol.Request) uint64 {
	c.t.Helper()
	if req.ID == 0 {
		req.ID = c.ids.Add(1)
	}
	b, _ := json.Marshal(req)
	c.sendRaw(websocket.MessageText, b)
	return req.ID
}

func (c *client) sendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.ws.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// call sends req and returns its reply.
func (c *client) call(req protocol.Request) protocol.Frame {
	c.t.Helper()
	id := c.send(req)
	return c.expect("reply", func(f protocol.Frame) bool { return f.Type == protocol.TypeReply && f.ID == id })
}

// expect returns the first frame, read or backlogged, that matches.
func (c *client) expect(what string, match func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	for i, f := range c.backlog {
		if match(f) {
			c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
			return f
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection ended waiting for %s: %v", what, c.err)
			}
			if match(f) {
				return f
			}
			c.backlog = append(c.backlog, f)
		case <-timer.C:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// message waits for a message push in room.
func (c *client) message(room string) protocol.Frame {
	c.t.Helper()
	return c.expect("message in "+room, func(f protocol.Frame) bool {
		return f.Type == protocol.TypeMessage && f.Room == room
	})
}

// closed waits for the connection to end and returns its close code.
func (c *client) closed() int {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				<-c.done
				return int(websocket.CloseStatus(c.err))
			}
		case <-time.After(wait):
			c.t.Fatal("timed out waiting for the connection to close")
		}
	}
}

// connected waits for the connected push.
func (c *client) connected() protocol.AuthResult {
	c.t.Helper()
	f := c.expect("connected", func(f protocol.Frame) bool { return f.Type == protocol.TypeConnected })
	var res protocol.AuthResult
	if err := json.Unmarshal(f.Result, &res); err != nil {
		c.t.Fatal(err)
	}
	return res
}

// join joins room and fails the test unless the reply is ok.
func (c *client) join(room string) {
	c.t.Helper()
	if f := c.call(protocol.Request{Type: protocol.TypeJoin, Room: room}); f.Error != nil {
		c.t.Fatalf("join %s: %v", room, f.Error)
	}
}

func errCode(f protocol.Frame) protocol.ErrorCode {
	if f.Error == nil {
		return ""
	}
	return f.Error.Code
}

// publishHTTP publishes through POST /v1/publish with the credential.
func publishHTTP(t *testing.T, r *replica, room, data string) protocol.PublishResult {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"room": room, "data": json.RawMessage(data)})
	req, _ := http.NewRequest(http.MethodPost, r.http+"/v1/publish", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+serviceCred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %s", resp.Status)
	}
	var res protocol.PublishResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

// metric returns the value of one series of the replica's /metrics, on
// its metrics listener, or -1 when it is absent.
func metric(t *testing.T, r *replica, series string) float64 {
	t.Helper()
	resp, err := http.Get(r.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}
