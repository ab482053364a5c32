package app_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"switchboard/libs/redistest"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// watch opens a WatchRevocations stream and waits until it is registered
// (its headers arrived), so no later revocation can be missed.
func watch(t testing.TB, r *replica) chan *authv1.WatchRevocationsResponse {
	t.Helper()
	stream, err := r.admin.WatchRevocations(ctxT(t), &authv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("watch headers: %v", err)
	}
	ch := make(chan *authv1.WatchRevocationsResponse, 16)
	go func() {
		defer close(ch)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			ch <- m
		}
	}()
	return ch
}

func next(t testing.TB, ch chan *authv1.WatchRevocationsResponse) *authv1.WatchRevocationsResponse {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("watch stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no revocation within 5s")
	}
	return nil
}

// Two replicas share Redis and a key: a logout on one is seen by the
// other's warm cache and by subscribers of both.
func TestRevocationReachesOtherReplicaAndWatchers(t *testing.T) {
	srv := redistest.Start(t)
	vars := env(map[string]string{
		"AUTH_REDIS_URL": srv.URL(), "AUTH_SIGNING_KEY_FILE": keyFile(t),
		"AUTH_REVOCATION_BUDGET": "1m", // events, not the budget, must do it
	})
	seen := &secrets{}
	a, b := start(t, vars, seen), start(t, vars, seen)
	watchA, watchB := watch(t, a), watch(t, b)

	p := issue(t, a, seen, "u-rev")
	for range 2 { // warm b's caches
		if _, err := b.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: p.GetAccessToken()}); err != nil {
			t.Fatalf("b validates a's token: %v", err)
		}
	}
	if _, err := a.client.Logout(ctxT(t), &authv1.LogoutRequest{RefreshToken: p.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan *authv1.WatchRevocationsResponse{"a": watchA, "b": watchB} {
		m := next(t, ch)
		if s := m.GetSession(); s.GetSessionId() != p.GetSessionId() || s.GetUserId() != "u-rev" {
			t.Fatalf("watcher of %s got %v", name, m)
		}
	}
	eventually(t, "b refuses the revoked token", func() bool {
		_, err := b.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: p.GetAccessToken()})
		return code(err) == codes.Unauthenticated
	})

	// Conversation access: b caches "allowed", a revokes.
	if _, err := a.admin.GrantAccess(ctxT(t), &authv1.GrantAccessRequest{UserId: "u-rev", ConversationId: "c1"}); err != nil {
		t.Fatal(err)
	}
	if r, err := b.admin.Authorize(ctxT(t), &authv1.AuthorizeRequest{UserId: "u-rev", ConversationId: "c1"}); err != nil || !r.GetAllowed() {
		t.Fatalf("Authorize on b = %v, %v", r, err)
	}
	if _, err := a.admin.RevokeAccess(ctxT(t), &authv1.RevokeAccessRequest{UserId: "u-rev", ConversationId: "c1"}); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan *authv1.WatchRevocationsResponse{"a": watchA, "b": watchB} {
		if m := next(t, ch); m.GetAccess().GetConversationId() != "c1" || m.GetAccess().GetUserId() != "u-rev" {
			t.Fatalf("watcher of %s got %v", name, m)
		}
	}
	eventually(t, "b refuses the revoked access", func() bool {
		r, err := b.admin.Authorize(ctxT(t), &authv1.AuthorizeRequest{UserId: "u-rev", ConversationId: "c1"})
		return err == nil && !r.GetAllowed()
	})

	// RevokeSessions on b ends sessions a issued; a's watcher hears each.
	q1, q2 := issue(t, a, seen, "u-all"), issue(t, a, seen, "u-all")
	n, err := b.admin.RevokeSessions(ctxT(t), &authv1.RevokeSessionsRequest{UserId: "u-all"})
	if err != nil || n.GetRevoked() != 2 {
		t.Fatalf("RevokeSessions = %v, %v", n, err)
	}
	got := map[string]bool{next(t, watchA).GetSession().GetSessionId(): true, next(t, watchA).GetSession().GetSessionId(): true}
	if !got[q1.GetSessionId()] || !got[q2.GetSessionId()] {
		t.Fatalf("watcher of a saw %v", got)
	}
}

// A watcher whose replica loses its Redis subscription is ended, so that
// it drops its cache and watches again.
func TestWatchEndsWhenRevocationsMayBeMissed(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, env(map[string]string{"AUTH_REDIS_URL": srv.URL(), "AUTH_SIGNING_KEY_FILE": keyFile(t)}), nil)
	stream, err := r.admin.WatchRevocations(ctxT(t), &authv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	_, err = stream.Recv()
	if code(err) != codes.Unavailable {
		t.Fatalf("watch after a Redis restart = %v, want Unavailable", err)
	}
}
