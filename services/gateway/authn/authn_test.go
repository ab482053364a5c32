package authn_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/internal/fakeauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type revocations struct {
	mu       sync.Mutex
	sessions []string
}

func (r *revocations) session(_, s string) {
	r.mu.Lock()
	r.sessions = append(r.sessions, s)
	r.mu.Unlock()
}

func (r *revocations) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

func setup(t *testing.T, watch bool) (*fakeauth.Auth, *authn.Authenticator, *revocations) {
	t.Helper()
	return setupWith(t, watch, nil)
}

// startAuth starts a fake auth and returns it with a client dialled to it;
// both end with the test.
func startAuth(t *testing.T) (*fakeauth.Auth, authv1.AuthServiceClient) {
	t.Helper()
	fa, err := fakeauth.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fa.Stop)
	conn, err := fa.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return fa, authv1.NewAuthServiceClient(conn)
}

// setupWith is setup with mod applied to the options.
func setupWith(t *testing.T, watch bool, mod func(*authn.Options)) (*fakeauth.Auth, *authn.Authenticator, *revocations) {
	t.Helper()
	fa, client := startAuth(t)
	rev := &revocations{}
	opts := authn.Options{
		Client: client, CacheEntries: 100, CacheTTL: time.Minute,
		OnSessionRevoked: rev.session, OnAccessRevoked: func(string, string) {},
	}
	if mod != nil {
		mod(&opts)
	}
	a, err := authn.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if watch {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.Watch(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		deadline := time.Now().Add(10 * time.Second)
		for !a.Watching() || fa.Watchers() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the revocation stream never connected")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return fa, a, rev
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		watch     bool
		wantCalls int64 // calls to auth for three validations of one token
	}{
		{"cached while the revocation stream is up", true, 1},
		{"not cached without the stream", false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa, a, _ := setup(t, tt.watch)
			tok := fa.Issue("alice", "s1", time.Hour)
			for range 3 {
				id, err := a.Validate(context.Background(), tok)
				if err != nil || id.User != "alice" || id.Session != "s1" {
					t.Fatalf("validate: %+v %v", id, err)
				}
			}
			if n := fa.Validations.Load(); n != tt.wantCalls {
				t.Fatalf("%d calls to auth, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	fa, a, _ := setup(t, false)
	ctx := context.Background()
	if _, err := a.Validate(ctx, "nope"); !errors.Is(err, authn.ErrBadToken) {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := a.Validate(ctx, string(make([]byte, authn.MaxTokenBytes+1))); !errors.Is(err, authn.ErrBadToken) {
		t.Fatalf("huge token: %v", err)
	}
	if n := fa.Validations.Load(); n != 1 {
		t.Fatalf("%d calls to auth, want 1: a huge token is refused unread", n)
	}
	tok := fa.Issue("alice", "s1", time.Hour)
	fa.SetDown(true)
	if _, err := a.Validate(ctx, tok); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("auth down: %v", err)
	}
}

// A revoked session's cached validation stops counting at once.
func TestRevokedSession(t *testing.T) {
	fa, a, rev := setup(t, true)
	ctx := context.Background()
	tok := fa.Issue("alice", "s1", time.Hour)
	if _, err := a.Validate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	fa.DropSession("alice", "s1")
	deadline := time.Now().Add(10 * time.Second)
	for rev.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the revocation never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := a.Validate(ctx, tok); !errors.Is(err, authn.ErrBadToken) {
		t.Fatalf("revoked session: %v, want a refused token", err)
	}
}
