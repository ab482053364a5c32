package authn_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"switchboard/libs/grpctest"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/internal/fakeauth"
)

// watchClient hands out revocation streams whose response headers are held
// back until release is closed, and calls onRecv before each Recv.
type watchClient struct {
	authv1.AuthServiceClient
	release chan struct{} // closed to let the headers through
	asked   chan struct{} // closed when the headers are first asked for
	once    sync.Once
	onRecv  func()

	mu      sync.Mutex
	streams int                // WatchRevocations calls
	cut     context.CancelFunc // ends the latest stream
}

func (c *watchClient) WatchRevocations(ctx context.Context, in *authv1.WatchRevocationsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[authv1.WatchRevocationsResponse], error) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.streams++
	c.cut = cancel
	c.mu.Unlock()
	s, err := c.AuthServiceClient.WatchRevocations(ctx, in, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &heldStream{ServerStreamingClient: s, c: c}, nil
}

func (c *watchClient) opened() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams
}

// cutStream ends the latest revocation stream, as a broken connection
// would.
func (c *watchClient) cutStream() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut()
}

type heldStream struct {
	grpc.ServerStreamingClient[authv1.WatchRevocationsResponse]
	c *watchClient
}

func (s *heldStream) Header() (metadata.MD, error) {
	s.c.once.Do(func() { close(s.c.asked) })
	select {
	case <-s.c.release:
	case <-s.Context().Done():
		return nil, s.Context().Err()
	}
	return s.ServerStreamingClient.Header()
}

func (s *heldStream) Recv() (*authv1.WatchRevocationsResponse, error) {
	if s.c.onRecv != nil {
		s.c.onRecv()
	}
	return s.ServerStreamingClient.Recv()
}

// watch runs a.Watch until the test ends.
func watch(t *testing.T, a *authn.Authenticator) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Watch(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The cache is not used between the revocation stream's call and its
// response headers, which auth sends once the watcher is registered: a
// revocation in that window would not be seen. Once the headers are in,
// it is.
func TestCacheWaitsForHeaders(t *testing.T) {
	fa, client := startAuth(t)
	wc := &watchClient{
		AuthServiceClient: client,
		release:           make(chan struct{}), asked: make(chan struct{}),
	}
	a, err := authn.New(authn.Options{
		Client: wc, CacheEntries: 100, CacheTTL: time.Minute,
		OnSessionRevoked: func(string, string) {}, OnAccessRevoked: func(string, string) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	watch(t, a)

	// Either the headers are asked for, or (without waiting for them) the
	// cache is in use as soon as the stream is open.
	waitFor(t, "the revocation stream was never opened", func() bool {
		select {
		case <-wc.asked:
			return true
		default:
			return a.Watching()
		}
	})
	if a.Watching() {
		t.Fatal("the cache is in use before the stream's headers arrived")
	}
	ctx := context.Background()
	tok := fa.Issue("alice", "s1", time.Hour)
	validate := func() {
		t.Helper()
		if id, err := a.Validate(ctx, tok); err != nil || id.User != "alice" {
			t.Fatalf("validate: %+v %v", id, err)
		}
	}
	for range 3 {
		validate()
	}
	if n := fa.Validations.Load(); n != 3 {
		t.Fatalf("%d calls to auth before the headers, want 3: none from cache", n)
	}

	close(wc.release)
	waitFor(t, "the cache never came into use after the headers", a.Watching)
	for range 3 {
		validate()
	}
	if n := fa.Validations.Load(); n != 4 {
		t.Fatalf("%d calls to auth, want 4: one miss after the headers, then hits", n)
	}
}

// A revocation stream that ends without headers (here refused for want of
// the service credential) never puts the cache in use.
func TestCacheUnusedWithoutHeaders(t *testing.T) {
	fa, err := fakeauth.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fa.Stop)
	conn := grpctest.Dial(t, fa.Addr)
	var a *authn.Authenticator
	var recvs, trusted atomic.Int64
	wc := &watchClient{
		AuthServiceClient: authv1.NewAuthServiceClient(conn),
		release:           make(chan struct{}), asked: make(chan struct{}),
		onRecv: func() {
			if a.Watching() {
				trusted.Add(1)
			}
			recvs.Add(1)
		},
	}
	close(wc.release)
	a, err = authn.New(authn.Options{
		Client: wc, OnSessionRevoked: func(string, string) {}, OnAccessRevoked: func(string, string) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	watch(t, a)

	waitFor(t, "the refused stream was never read", func() bool { return recvs.Load() >= 2 })
	if n := trusted.Load(); n != 0 {
		t.Fatalf("the cache was in use on %d refused streams", n)
	}
}

// slowClient holds the answers of Validate until release is closed.
type slowClient struct {
	*watchClient
	asked   chan struct{}
	release chan struct{}
}

func (c *slowClient) Validate(ctx context.Context, in *authv1.ValidateRequest, opts ...grpc.CallOption) (*authv1.ValidateResponse, error) {
	resp, err := c.watchClient.Validate(ctx, in, opts...)
	close(c.asked)
	<-c.release
	return resp, err
}

// A validation auth answered before the revocation stream broke is not
// cached once the stream is back: revocations made while it was down were
// not seen, and the answer may predate one of them.
func TestCacheSkipsValidationsAcrossReconnect(t *testing.T) {
	fa, client := startAuth(t)
	wc := &watchClient{
		AuthServiceClient: client,
		release:           make(chan struct{}), asked: make(chan struct{}),
	}
	close(wc.release)
	sc := &slowClient{watchClient: wc, asked: make(chan struct{}), release: make(chan struct{})}
	a, err := authn.New(authn.Options{
		Client: sc, CacheEntries: 100, CacheTTL: time.Minute,
		OnSessionRevoked: func(string, string) {}, OnAccessRevoked: func(string, string) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	watch(t, a)
	waitFor(t, "the revocation stream never came up", a.Watching)

	ctx := context.Background()
	tok := fa.Issue("alice", "s1", time.Hour)
	done := make(chan error, 1)
	go func() { _, err := a.Validate(ctx, tok); done <- err }()
	<-sc.asked // auth has answered; the answer is on its way back

	wc.cutStream()
	waitFor(t, "the revocation stream never came back", func() bool {
		return wc.opened() >= 2 && a.Watching()
	})
	close(sc.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	sc.asked, sc.release = make(chan struct{}), make(chan struct{})
	close(sc.release)
	if _, err := a.Validate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if n := fa.Validations.Load(); n != 2 {
		t.Fatalf("%d calls to auth, want 2: the answer from before the reconnect was cached", n)
	}
}
