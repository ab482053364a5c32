package authclient_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"switchboard/libs/authclient"
	"switchboard/libs/gatewayclient"
	"switchboard/libs/grpctest"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeAuth rotates refresh tokens like the auth service, with tokens that
// live ttl, and can be told to fail or to hold refreshes at a gate.
type fakeAuth struct {
	authv1.UnimplementedAuthServiceServer
	ttl time.Duration

	mu        sync.Mutex
	current   string
	n         int
	failNext  int  // transient failures to answer first
	refuse    bool // answer UNAUTHENTICATED
	gate      chan struct{}
	loggedOut []string
	inFlight  atomic.Int32
	maxFlight atomic.Int32
}

func (f *fakeAuth) pair() *authv1.TokenPair {
	f.n++
	f.current = fmt.Sprintf("refresh-%d", f.n)
	return &authv1.TokenPair{
		AccessToken:     fmt.Sprintf("access-%d", f.n),
		AccessExpiresAt: timestamppb.New(time.Now().Add(f.ttl)),
		RefreshToken:    f.current,
	}
}

func (f *fakeAuth) Refresh(ctx context.Context, r *authv1.RefreshRequest) (*authv1.RefreshResponse, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxFlight.Load()
		if n <= m || f.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.refuse:
		return nil, status.Error(codes.Unauthenticated, "invalid or expired refresh token")
	case f.failNext > 0:
		f.failNext--
		return nil, status.Error(codes.Unavailable, "auth store unavailable")
	case r.GetRefreshToken() != f.current:
		return nil, status.Error(codes.Unauthenticated, "invalid or expired refresh token")
	}
	return &authv1.RefreshResponse{Tokens: f.pair()}, nil
}

func (f *fakeAuth) Logout(_ context.Context, r *authv1.LogoutRequest) (*authv1.LogoutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loggedOut = append(f.loggedOut, r.GetRefreshToken())
	return &authv1.LogoutResponse{}, nil
}

func (f *fakeAuth) refreshes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n - 1
}

// serve runs f on a real gRPC server and returns a client of it.
func serve(t *testing.T, f *fakeAuth) authv1.AuthServiceClient {
	t.Helper()
	addr := grpctest.Serve(t, func(s *grpc.Server) { authv1.RegisterAuthServiceServer(s, f) })
	return authv1.NewAuthServiceClient(grpctest.Dial(t, addr))
}

// changes collects OnChange calls.
type changes struct{ ch chan authclient.Change }

func newChanges() *changes { return &changes{ch: make(chan authclient.Change, 64)} }

func (c *changes) on(ch authclient.Change) { c.ch <- ch }

func (c *changes) next(t *testing.T) authclient.Change {
	t.Helper()
	select {
	case ch := <-c.ch:
		return ch
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10s")
	}
	return authclient.Change{}
}

func newSession(t *testing.T, f *fakeAuth, opts authclient.Options) *authclient.Session {
	t.Helper()
	client := serve(t, f)
	f.mu.Lock()
	first := f.pair()
	f.mu.Unlock()
	s, err := authclient.New(client, first, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRefreshesBeforeExpiry(t *testing.T) {
	f := &fakeAuth{ttl: 900 * time.Millisecond}
	ch := newChanges()
	s := newSession(t, f, authclient.Options{Margin: 600 * time.Millisecond, OnChange: ch.on})
	for i := 2; i <= 3; i++ {
		c := ch.next(t)
		if c.Err != nil || c.AccessToken != fmt.Sprintf("access-%d", i) {
			t.Fatalf("change %d = %+v", i, c)
		}
		if time.Now().After(c.ExpiresAt) {
			t.Fatal("the new token had already expired")
		}
	}
	tok, err := s.Token(ctx(t))
	if err != nil || tok == "access-1" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
}

func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	// The first token is due at once; the refresher's refresh is held at
	// the gate while callers pile up behind it.
	f := &fakeAuth{ttl: time.Millisecond, gate: make(chan struct{})}
	s := newSession(t, f, authclient.Options{})
	f.mu.Lock()
	f.ttl = time.Hour
	f.mu.Unlock()
	waitFor(t, "a refresh in flight", func() bool { return f.inFlight.Load() == 1 })
	const n = 20
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = s.Token(ctx(t)) })
	}
	f.mu.Lock()
	close(f.gate)
	f.gate = nil
	f.mu.Unlock()
	wg.Wait()
	if m := f.maxFlight.Load(); m != 1 {
		t.Fatalf("%d refreshes ran at once", m)
	}
	for i := range n {
		if errs[i] != nil || got[i] != got[0] || got[0] == "access-1" {
			t.Fatalf("caller %d: %q, %v", i, got[i], errs[i])
		}
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	f := &fakeAuth{ttl: 600 * time.Millisecond, failNext: 3}
	ch := newChanges()
	newSession(t, f, authclient.Options{Margin: 400 * time.Millisecond, MinBackoff: 10 * time.Millisecond, OnChange: ch.on})
	if c := ch.next(t); c.Err != nil || c.AccessToken != "access-2" {
		t.Fatalf("change after retries = %+v", c)
	}
	f.mu.Lock()
	left := f.failNext
	f.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d failures not retried", left)
	}
}

func TestRefusedSessionEnds(t *testing.T) {
	f := &fakeAuth{ttl: time.Millisecond, refuse: true}
	ch := newChanges()
	s := newSession(t, f, authclient.Options{OnChange: ch.on})
	if c := ch.next(t); !errors.Is(c.Err, authclient.ErrEnded) {
		t.Fatalf("change = %+v", c)
	}
	if _, err := s.Token(ctx(t)); !errors.Is(err, authclient.ErrEnded) {
		t.Fatalf("Token = %v, want ErrEnded", err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	if !errors.Is(s.Err(), authclient.ErrEnded) {
		t.Fatalf("Err = %v", s.Err())
	}
}

func TestTransientFailureKeepsValidToken(t *testing.T) {
	// Due half-way, at 500ms; valid until 1s.
	f := &fakeAuth{ttl: time.Second, failNext: 1000}
	s := newSession(t, f, authclient.Options{MinBackoff: time.Hour})
	waitFor(t, "a failed refresh", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.failNext < 1000
	})
	tok, err := s.Token(ctx(t))
	if err != nil || tok != "access-1" {
		t.Fatalf("Token while auth fails = %q, %v; want the still valid token", tok, err)
	}
}

func TestLogoutStops(t *testing.T) {
	f := &fakeAuth{ttl: time.Hour}
	ch := newChanges()
	s := newSession(t, f, authclient.Options{OnChange: ch.on})
	if err := s.Logout(ctx(t)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	out := f.loggedOut
	f.mu.Unlock()
	if len(out) != 1 || out[0] != "refresh-1" {
		t.Fatalf("server saw logouts %v", out)
	}
	if _, err := s.Token(ctx(t)); !errors.Is(err, authclient.ErrClosed) {
		t.Fatalf("Token after logout = %v", err)
	}
	if c := ch.next(t); !errors.Is(c.Err, authclient.ErrClosed) {
		t.Fatalf("change = %+v", c)
	}
	if f.refreshes() != 0 {
		t.Fatalf("%d refreshes after logout", f.refreshes())
	}
}

func TestNewRefusesIncompletePair(t *testing.T) {
	for _, p := range []*authv1.TokenPair{nil, {AccessToken: "a"}, {AccessToken: "a", RefreshToken: "r"}} {
		if _, err := authclient.New(nil, p, authclient.Options{}); err == nil {
			t.Errorf("New(%v) accepted", p)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A Session is the gateway client's token source.
var _ gatewayclient.TokenSource = (*authclient.Session)(nil)

// An OnChange that blocks while many refreshes happen is handed, once it
// returns, the latest token and then the end; nothing is lost to a full
// buffer.
func TestBlockedListenerGetsLatestTokenAndEnd(t *testing.T) {
	f := &fakeAuth{ttl: time.Millisecond} // every token is due at once
	release := make(chan struct{})
	ch := newChanges()
	var calls atomic.Int32
	s := newSession(t, f, authclient.Options{OnChange: func(c authclient.Change) {
		if calls.Add(1) == 1 {
			<-release
		}
		ch.on(c)
	}})
	waitFor(t, "more refreshes than any buffer", func() bool { return f.refreshes() > 200 })
	f.mu.Lock()
	f.refuse = true
	f.mu.Unlock()
	waitFor(t, "the session to end", func() bool { return s.Err() != nil })
	f.mu.Lock()
	latest := fmt.Sprintf("access-%d", f.n)
	f.mu.Unlock()
	close(release)

	if c := ch.next(t); c.Err != nil || c.AccessToken == latest {
		t.Fatalf("first change = %q, %v; want an early token", c.AccessToken, c.Err)
	}
	if c := ch.next(t); c.Err != nil || c.AccessToken != latest {
		t.Fatalf("second change = %q, %v; want the latest token %s", c.AccessToken, c.Err, latest)
	}
	if c := ch.next(t); !errors.Is(c.Err, authclient.ErrEnded) {
		t.Fatalf("third change = %+v, want the end", c)
	}
}
