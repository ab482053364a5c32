package gatewayclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"switchboard/libs/authclient"
	"switchboard/libs/gatewayclient"
	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/grpctest"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// tokenAuth is a fake auth service: it issues access tokens that live ttl
// and rotates the refresh token on every Refresh, and remembers the expiry
// of each access token so that the fake gateway can check them.
type tokenAuth struct {
	authv1.UnimplementedAuthServiceServer
	ttl time.Duration

	mu      sync.Mutex
	n       int
	refresh string               // the current refresh token
	expiry  map[string]time.Time // access token: its expiry
}

// issueLocked returns a new token pair. Caller must hold mu.
func (a *tokenAuth) issueLocked() *authv1.TokenPair {
	a.n++
	access, exp := fmt.Sprintf("access-%d", a.n), time.Now().Add(a.ttl)
	a.refresh = fmt.Sprintf("refresh-%d", a.n)
	a.expiry[access] = exp
	return &authv1.TokenPair{AccessToken: access, AccessExpiresAt: timestamppb.New(exp), RefreshToken: a.refresh}
}

func (a *tokenAuth) Refresh(_ context.Context, r *authv1.RefreshRequest) (*authv1.RefreshResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.GetRefreshToken() != a.refresh {
		return nil, status.Error(codes.Unauthenticated, "invalid refresh token")
	}
	return &authv1.RefreshResponse{Tokens: a.issueLocked()}, nil
}

// valid returns the expiry of access and whether it is an issued token
// that has not expired.
func (a *tokenAuth) valid(access string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.expiry[access]
	return exp, ok && time.Now().Before(exp)
}

// serveAuth runs a on a gRPC server on loopback and returns a client of it.
func serveAuth(t *testing.T, a *tokenAuth) authv1.AuthServiceClient {
	t.Helper()
	addr := grpctest.Serve(t, func(s *grpc.Server) { authv1.RegisterAuthServiceServer(s, a) })
	return authv1.NewAuthServiceClient(grpctest.Dial(t, addr))
}

// refreshed is a refresh frame the fake gateway accepted: its token, and
// whether it came before the connection's token expired.
type refreshed struct {
	token string
	early bool
}

// authGateway is a fake gateway that accepts the tokens of a: a
// connection's token from its Authorization header, a refresh's when it
// is valid, and tells the client each one's expiry.
type authGateway struct {
	a         *tokenAuth
	conns     atomic.Int32
	mu        sync.Mutex
	refreshes []refreshed
}

func (g *authGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	exp, ok := g.a.valid(tok)
	if !ok {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	g.conns.Add(1)
	c := fakeConn{ws: ws, ctx: r.Context()}
	auth, _ := json.Marshal(protocol.AuthResult{User: "u1", ExpiresAt: exp.UnixMilli()})
	if c.send(protocol.Frame{Type: protocol.TypeConnected, Result: auth}) != nil {
		return
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
		var res any = struct{}{}
		if req.Type == protocol.TypeRefresh {
			next, ok := g.a.valid(req.Token)
			if !ok {
				b, _ := json.Marshal(protocol.Frame{Type: protocol.TypeReply, ID: req.ID,
					Error: &protocol.Error{Code: protocol.ErrBadToken, Message: "bad token"}})
				if ws.Write(c.ctx, websocket.MessageText, b) != nil {
					return
				}
				continue
			}
			g.mu.Lock()
			g.refreshes = append(g.refreshes, refreshed{token: req.Token, early: time.Now().Before(exp)})
			g.mu.Unlock()
			exp, res = next, protocol.RefreshResult{ExpiresAt: next.UnixMilli()}
		}
		if c.reply(req.ID, res) != nil {
			return
		}
	}
}

func (g *authGateway) accepted() []refreshed {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]refreshed(nil), g.refreshes...)
}

// The auth client's Session as the token source: the gateway client
// connects with the session's token and, before that token expires,
// refreshes in-band on the same connection with the token the session
// produced by its own refresh, and reports it.
func TestSessionTokenSourceRefreshesInBand(t *testing.T) {
	a := &tokenAuth{ttl: time.Second, expiry: make(map[string]time.Time)}
	client := serveAuth(t, a)
	a.mu.Lock()
	first := a.issueLocked()
	a.mu.Unlock()

	var mu sync.Mutex
	var produced []string // tokens the session reported, in order
	sess, err := authclient.New(client, first, authclient.Options{
		Margin: 500 * time.Millisecond, // refreshes 500 ms into the token's second
		OnChange: func(c authclient.Change) {
			mu.Lock()
			produced = append(produced, c.AccessToken)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)

	g := &authGateway{a: a}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	var events sync.Mutex
	var refreshEvents int
	c := gatewayclient.New(gatewayclient.Options{
		URL: "ws" + srv.URL[len("http"):], Tokens: sess,
		RefreshMargin: 250 * time.Millisecond, // 250 ms after the session's refresh
		OnEvent: func(e gatewayclient.Event) {
			if e.Refreshed {
				events.Lock()
				refreshEvents++
				events.Unlock()
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	poll(t, "an in-band refresh", func() bool { return len(g.accepted()) > 0 })
	got := g.accepted()[0]
	poll(t, "the session to report "+got.token, func() bool { // OnChange runs on its own goroutine
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(produced, got.token)
	})
	if got.token == first.GetAccessToken() {
		t.Fatalf("refreshed with the first token %q", got.token)
	}
	if !got.early {
		t.Fatalf("refresh with %q came after the connection's token expired", got.token)
	}
	poll(t, "the Refreshed event", func() bool {
		events.Lock()
		defer events.Unlock()
		return refreshEvents > 0
	})
	if n := g.conns.Load(); n != 1 {
		t.Fatalf("%d connections: the refresh should keep the first", n)
	}
}
