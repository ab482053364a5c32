package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient/protocol"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/connection"
	"switchboard/services/gateway/gateway"
	"switchboard/services/gateway/internal/fakeauth"
)

// fuzzMaxBytes is the inbound frame limit of the fuzzed gateway: small, so
// that inputs past it are within the fuzzer's reach.
const fuzzMaxBytes = 2048

// pingID is the id of the ping that follows each fuzzed frame: its reply
// marks the end of the frame's answers, since one connection's requests
// are answered in order.
const pingID = 1<<63 + 7

// FuzzInboundFrame sends each input as a text frame on a fresh,
// authenticated connection of a gateway with the in-process broker. The
// gateway must never fail internally on it: a frame past the inbound limit
// closes with 3504, any other frame is answered (or refused with an error
// code of docs/protocol.md's catalog, never internal) and the connection
// goes on answering. A frame the gateway's decoding accepts re-encodes to
// one that decodes to the same request.
func FuzzInboundFrame(f *testing.F) {
	catalog := errorCatalog(f)
	fz := startFuzzGateway(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, decoded := decodeAgain(t, frame)
		c := fz.dial(t)
		c.write(t, frame)
		if len(frame) > fuzzMaxBytes {
			if code := c.closeCode(t); code != int(protocol.CloseMessageTooBig) {
				t.Fatalf("a %d-byte frame closed with %d, want %d", len(frame), code, protocol.CloseMessageTooBig)
			}
			return
		}
		ping := uint64(pingID)
		if decoded && req.ID == ping {
			ping++
		}
		c.write(t, []byte(`{"id":`+jsonUint(ping)+`,"type":"ping"}`))
		frames := c.until(t, ping)
		checkAnswers(t, catalog, frames, req, decoded)
	})
}

// checkAnswers checks the frames that answered one fuzzed frame.
func checkAnswers(t *testing.T, catalog map[protocol.ErrorCode]bool, frames []protocol.Frame, req protocol.Request, decoded bool) {
	t.Helper()
	var pushed []protocol.ErrorCode
	var replied *protocol.Frame
	for i, f := range frames {
		if f.Error != nil && !catalog[f.Error.Code] {
			t.Fatalf("error code %q is not a protocol error of the catalog: %+v", f.Error.Code, f)
		}
		switch {
		case f.Type == protocol.TypeError:
			pushed = append(pushed, f.Error.Code)
		case f.Type == protocol.TypeReply && decoded && f.ID == req.ID:
			replied = &frames[i]
		}
	}
	switch {
	case !decoded || req.ID == 0:
		if len(pushed) != 1 || pushed[0] != protocol.ErrBadRequest {
			t.Fatalf("a frame without a request id drew error pushes %v, want one %s", pushed, protocol.ErrBadRequest)
		}
	case replied == nil:
		t.Fatalf("request %d (type %q) was not answered", req.ID, req.Type)
	case replied.Error == nil && replied.Result == nil:
		t.Fatalf("request %d answered with neither result nor error", req.ID)
	}
}

// decodeAgain decodes frame as the gateway does; when that succeeds it
// encodes the request, decodes it again and checks both mean the same.
func decodeAgain(t *testing.T, frame []byte) (protocol.Request, bool) {
	t.Helper()
	var req protocol.Request
	if json.Unmarshal(frame, &req) != nil {
		return req, false
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("encode a decoded request: %v", err)
	}
	var again protocol.Request
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatalf("re-encoded request %s refused: %v", b, err)
	}
	if !sameRequest(t, req, again) {
		t.Fatalf("re-encoded request means another thing:\n%+v\n%+v", req, again)
	}
	return req, true
}

// sameRequest compares two requests, their raw JSON fields by value.
func sameRequest(t *testing.T, a, b protocol.Request) bool {
	t.Helper()
	rawA := []json.RawMessage{a.Data, a.TS}
	rawB := []json.RawMessage{b.Data, b.TS}
	for i := range rawA {
		if !sameJSON(t, rawA[i], rawB[i]) {
			return false
		}
	}
	a.Data, a.TS, b.Data, b.TS = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	va, vb := decodeAny(t, a), decodeAny(t, b)
	return reflect.DeepEqual(va, vb)
}

func decodeAny(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("raw field %q does not decode: %v", raw, err)
	}
	return v
}

func jsonUint(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// errorCatalog reads the error codes from docs/protocol.md's table.
func errorCatalog(tb testing.TB) map[protocol.ErrorCode]bool {
	tb.Helper()
	doc, err := os.ReadFile("../../../docs/protocol.md")
	if err != nil {
		tb.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "## Error codes")
	section, _, _ = strings.Cut(section, "\n## ")
	codes := map[protocol.ErrorCode]bool{}
	for line := range strings.SplitSeq(section, "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			if code, _, ok := strings.Cut(rest, "`"); ok {
				codes[protocol.ErrorCode(code)] = true
			}
		}
	}
	if !codes[protocol.ErrBadRequest] || !codes[protocol.ErrUnknownType] {
		tb.Fatalf("docs/protocol.md's error table not found: %v", codes)
	}
	return codes
}

// fuzzGateway is one gateway for a fuzz worker.
type fuzzGateway struct {
	ws    string
	token string
}

func startFuzzGateway(tb testing.TB) *fuzzGateway {
	tb.Helper()
	a, err := fakeauth.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Stop)
	a.Grant("fuzz", "c1")
	conn, err := a.Dial()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	cfg := testConfig()
	cfg.Conn = connection.Config{MaxMessageBytes: fuzzMaxBytes, Rate: 1e6, Burst: 1_000_000, MaxRooms: 4}
	g, err := gateway.New(cfg, gateway.Options{Auth: authv1.NewAuthServiceClient(conn)})
	if err != nil {
		tb.Fatal(err)
	}
	hl, gl := listenTB(tb), listenTB(tb)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ctx, hl, gl, nil) }()
	tb.Cleanup(func() { cancel(); <-errc })
	return &fuzzGateway{ws: "ws://" + hl.Addr().String() + "/ws", token: a.Issue("fuzz", "s1", time.Hour)}
}

func listenTB(tb testing.TB) net.Listener {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// fuzzConn is one client connection of a fuzzed input.
type fuzzConn struct {
	ws     *websocket.Conn
	frames chan []byte
	err    error // set before frames closes
}

// dial connects, authenticated by header, and waits for the connected
// push so that every later frame answers the input.
func (fz *fuzzGateway) dial(t *testing.T) *fuzzConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, fz.ws, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + fz.token}},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	c := &fuzzConn{ws: ws, frames: make(chan []byte, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.frames)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			c.frames <- b
		}
	}()
	t.Cleanup(func() { ws.CloseNow(); <-done })
	if f := c.next(t); f.Type != protocol.TypeConnected {
		t.Fatalf("first frame %+v, want connected", f)
	}
	return c
}

func (c *fuzzConn) write(t *testing.T, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next returns the next frame; the connection must not end first.
func (c *fuzzConn) next(t *testing.T) protocol.Frame {
	t.Helper()
	select {
	case b, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection ended: %v", c.err)
		}
		var f protocol.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("server frame %q: %v", b, err)
		}
		return f
	case <-time.After(wait):
		t.Fatal("no answer in time")
	}
	return protocol.Frame{}
}

// until returns the frames up to the reply with id, excluded.
func (c *fuzzConn) until(t *testing.T, id uint64) []protocol.Frame {
	t.Helper()
	var frames []protocol.Frame
	for {
		f := c.next(t)
		if f.Type == protocol.TypeReply && f.ID == id {
			return frames
		}
		frames = append(frames, f)
	}
}

// closeCode waits for the connection to end and returns its close code.
func (c *fuzzConn) closeCode(t *testing.T) int {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return int(websocket.CloseStatus(c.err))
			}
		case <-timer.C:
			t.Fatal("the connection did not close in time")
		}
	}
}
