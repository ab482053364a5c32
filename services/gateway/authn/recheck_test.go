package authn_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"switchboard/services/gateway/authn"
)

// A replica that holds nothing asks nothing on its first stream. After a
// break, everything held is rechecked in pages of MaxRecheck, and what
// auth reports ended or revoked reaches the callbacks.
func TestRecheckAfterTheStreamCameBack(t *testing.T) {
	full := authn.Held{Sessions: make(map[string]string)}
	for i := range authn.MaxRecheck + 1 {
		full.Sessions[fmt.Sprintf("s%d", i)] = "alice"
	}
	full.Accesses = []authn.Access{{User: "alice", Conversation: "c-kept"}, {User: "alice", Conversation: "c-gone"}}
	var mu sync.Mutex
	var accesses []string
	var held authn.Held // nothing, until the first stream is up
	fa, a, rev := setupWith(t, true, func(o *authn.Options) {
		o.Held = func() authn.Held {
			mu.Lock()
			defer mu.Unlock()
			return held
		}
		o.OnAccessRevoked = func(user, conversation string) {
			mu.Lock()
			accesses = append(accesses, user+"/"+conversation)
			mu.Unlock()
		}
	})
	fa.Grant("alice", "c-kept")
	if n := fa.Rechecks.Load(); n != 0 {
		t.Fatalf("%d recheck calls on the first stream with nothing held, want 0", n)
	}
	mu.Lock()
	held = full
	mu.Unlock()

	fa.SetWatchDown(true)
	fa.DropSession("alice", "s7")
	fa.DropSession("alice", fmt.Sprintf("s%d", authn.MaxRecheck))
	fa.SetWatchDown(false)
	// Both ended sessions may sit in the first page (the pages follow the
	// map's order), so the wait covers the second call and the access too.
	waitFor(t, "the recheck's two calls, two ended sessions and one access", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return rev.count() == 2 && fa.Rechecks.Load() >= 2 && len(accesses) > 0
	})
	if n := fa.Rechecks.Load(); n != 2 {
		t.Fatalf("%d recheck calls for %d sessions, want 2", n, authn.MaxRecheck+1)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(accesses, []string{"alice/c-gone"}) {
		t.Fatalf("revoked accesses %v, want alice/c-gone", accesses)
	}
	if !a.Watching() {
		t.Fatal("not watching after the recheck")
	}
}

// A session revoked before the first stream registered, while the replica
// already held a connection of it, is found by the first stream's recheck.
func TestRecheckOnTheFirstStream(t *testing.T) {
	fa, a, rev := setupWith(t, false, func(o *authn.Options) {
		o.Held = func() authn.Held {
			return authn.Held{Sessions: map[string]string{"s-early": "bob", "s-kept": "bob"}}
		}
	})
	fa.DropSession("bob", "s-early") // no watcher yet: nothing is streamed
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Watch(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "the first stream's recheck", func() bool { return rev.count() == 1 })
	rev.mu.Lock()
	defer rev.mu.Unlock()
	if !slices.Equal(rev.sessions, []string{"s-early"}) {
		t.Fatalf("revoked sessions %v, want s-early", rev.sessions)
	}
}
