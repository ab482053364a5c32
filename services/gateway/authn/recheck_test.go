package authn_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"switchboard/services/gateway/authn"
)

// Nothing is rechecked on the first stream. After a break, everything held
// is rechecked in pages of MaxRecheck, and what auth reports ended or
// revoked reaches the callbacks.
func TestRecheckAfterTheStreamCameBack(t *testing.T) {
	held := authn.Held{Sessions: make(map[string]string)}
	for i := range authn.MaxRecheck + 1 {
		held.Sessions[fmt.Sprintf("s%d", i)] = "alice"
	}
	held.Accesses = []authn.Access{{User: "alice", Conversation: "c-kept"}, {User: "alice", Conversation: "c-gone"}}
	var mu sync.Mutex
	var accesses []string
	fa, a, rev := setupWith(t, true, func(o *authn.Options) {
		o.Held = func() authn.Held { return held }
		o.OnAccessRevoked = func(user, conversation string) {
			mu.Lock()
			accesses = append(accesses, user+"/"+conversation)
			mu.Unlock()
		}
	})
	fa.Grant("alice", "c-kept")
	if n := fa.Rechecks.Load(); n != 0 {
		t.Fatalf("%d rechecks on the first stream, want 0", n)
	}

	fa.SetWatchDown(true)
	fa.DropSession("alice", "s7")
	fa.DropSession("alice", fmt.Sprintf("s%d", authn.MaxRecheck))
	fa.SetWatchDown(false)
	waitFor(t, "the recheck's two ended sessions", func() bool { return rev.count() == 2 })
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
