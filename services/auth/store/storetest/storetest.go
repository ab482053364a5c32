package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/services/auth/store"
)

// Factory returns a fresh, empty store; the suite closes it. The store
// must also implement Inspector.
type Factory func(t *testing.T) store.Store

// Inspector is what the suite needs besides store.Store to check that a
// secret is gone: Kept returns every value the store holds (refresh token
// hashes, sealed tokens, and anything else), however it is laid out. Tests
// of an implementation give it one, typically in an export_test.go file.
type Inspector interface {
	Kept(ctx context.Context) ([][]byte, error)
}

const grace = 10 * time.Second

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Users", testUsers},
		{"SessionLifetime", testSessionLifetime},
		{"RotateNormal", testRotateNormal},
		{"RotateReplayWithinGrace", testReplayWithinGrace},
		{"SealedTokenGoneAfterGrace", testSealedGoneAfterGrace},
		{"RotateReuseAfterGraceRevokes", testReuseAfterGrace},
		{"RotateOldTokenRevokes", testOldTokenRevokes},
		{"RotateUnknownTokenChangesNothing", testUnknownToken},
		{"ParallelRotateOneWinner", testParallelRotate},
		{"RotateRacingRevoke", testRotateRacingRevoke},
		{"RevokeSession", testRevokeSession},
		{"RevokeUserSessions", testRevokeUser},
		{"Access", testAccess},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func hash(t *testing.T) store.Hash {
	var h store.Hash
	if _, err := rand.Read(h[:]); err != nil {
		t.Fatal(err)
	}
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newSession stores a session of user "u1" living an hour from now.
func newSession(t *testing.T, s store.Store, id string) (store.Session, store.Hash) {
	t.Helper()
	now := time.Now().Truncate(time.Millisecond)
	sess := store.Session{ID: id, UserID: "u1", Created: now, Expires: now.Add(time.Hour)}
	h := hash(t)
	must(t, s.CreateSession(ctx(t), sess, h))
	return sess, h
}

func rotation(sid string, presented, next store.Hash, now time.Time) store.Rotation {
	return store.Rotation{
		SessionID: sid, Presented: presented, Next: next,
		NextSealed: append([]byte("sealed:"), next[:4]...), Now: now, Grace: grace,
	}
}

// subscribe returns a subscription ended at cleanup.
func subscribe(t *testing.T, s store.Store) store.Subscription {
	t.Helper()
	sub, err := s.Subscribe(ctx(t))
	must(t, err)
	t.Cleanup(sub.Close)
	return sub
}

// expect waits for the next event that is not a Reset.
func expect(t *testing.T, sub store.Subscription, want store.Event) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-sub.C():
			if !ok {
				t.Fatalf("subscription ended waiting for %+v", want)
			}
			if e.Kind == store.Reset {
				continue
			}
			if e != want {
				t.Fatalf("event = %+v, want %+v", e, want)
			}
			return
		case <-deadline:
			t.Fatalf("no event %+v within 5s", want)
		}
	}
}

func testUsers(t *testing.T, s store.Store) {
	u := store.User{ID: "u1", Email: "a@example.com", PasswordHash: "$argon2id$x"}
	must(t, s.CreateUser(ctx(t), u))
	got, err := s.UserByEmail(ctx(t), "a@example.com")
	if err != nil || got != u {
		t.Fatalf("UserByEmail = %+v, %v", got, err)
	}
	dupes := []store.User{
		{ID: "u2", Email: "a@example.com", PasswordHash: "h"},
		{ID: "u1", Email: "b@example.com", PasswordHash: "h"},
	}
	for _, d := range dupes {
		if err := s.CreateUser(ctx(t), d); !errors.Is(err, store.ErrExists) {
			t.Errorf("CreateUser(%s, %s) = %v, want ErrExists", d.ID, d.Email, err)
		}
	}
	if _, err := s.UserByEmail(ctx(t), "b@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused duplicate left a trace: %v", err)
	}
}

func testSessionLifetime(t *testing.T, s store.Store) {
	sess, h := newSession(t, s, "s1")
	got, err := s.Session(ctx(t), "s1", sess.Created)
	if err != nil || got != sess {
		t.Fatalf("Session = %+v, %v; want %+v", got, err, sess)
	}
	if _, err := s.Session(ctx(t), "s1", sess.Expires); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Session at expiry = %v, want ErrNotFound", err)
	}
	res, err := s.Rotate(ctx(t), rotation("s1", h, hash(t), sess.Expires))
	if err != nil || res.Outcome != store.Gone {
		t.Fatalf("Rotate at expiry = %v, %v; want gone", res.Outcome, err)
	}
	if _, err := s.Session(ctx(t), "nope", sess.Created); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session = %v", err)
	}
	if err := s.CreateSession(ctx(t), store.Session{ID: "s2", UserID: "u1", Created: sess.Created, Expires: sess.Expires}, h); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx(t), store.Session{ID: "s2", UserID: "u9", Created: sess.Created, Expires: sess.Expires}, h); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate session id = %v", err)
	}
}

func testRotateNormal(t *testing.T, s store.Store) {
	sess, h0 := newSession(t, s, "s1")
	h1, h2 := hash(t), hash(t)
	now := sess.Created.Add(time.Minute)
	res, err := s.Rotate(ctx(t), rotation("s1", h0, h1, now))
	if err != nil || res.Outcome != store.Rotated || res.Session != sess {
		t.Fatalf("first rotate = %+v, %v", res, err)
	}
	res, err = s.Rotate(ctx(t), rotation("s1", h1, h2, now.Add(time.Minute)))
	if err != nil || res.Outcome != store.Rotated {
		t.Fatalf("second rotate = %v, %v", res.Outcome, err)
	}
	if got, err := s.Session(ctx(t), "s1", now); err != nil || got.Expires != sess.Expires {
		t.Fatalf("rotation changed the session: %+v, %v", got, err)
	}
}

func testReplayWithinGrace(t *testing.T, s store.Store) {
	sess, h0 := newSession(t, s, "s1")
	h1 := hash(t)
	now := sess.Created.Add(time.Minute)
	rot := rotation("s1", h0, h1, now)
	if res, err := s.Rotate(ctx(t), rot); err != nil || res.Outcome != store.Rotated {
		t.Fatalf("rotate = %v, %v", res.Outcome, err)
	}
	again := rotation("s1", h0, hash(t), now.Add(grace))
	res, err := s.Rotate(ctx(t), again)
	if err != nil || res.Outcome != store.Replayed {
		t.Fatalf("replay at the end of the grace = %v, %v", res.Outcome, err)
	}
	if string(res.Sealed) != string(rot.NextSealed) {
		t.Fatalf("replay returned %q, want the current token's sealed form", res.Sealed)
	}
	if res, err := s.Rotate(ctx(t), rotation("s1", h1, hash(t), now.Add(grace))); err != nil || res.Outcome != store.Rotated {
		t.Fatalf("current token after a replay = %v, %v", res.Outcome, err)
	}
}

// testSealedGoneAfterGrace: the sealed current token is kept while the
// previous token may still be replayed, and nowhere in the store once the
// grace (by the wall clock) is over; with no grace it is never kept.
func testSealedGoneAfterGrace(t *testing.T, s store.Store) {
	sess, h0 := newSession(t, s, "s1")
	h1 := hash(t)
	rot := rotation("s1", h0, h1, time.Now())
	rot.NextSealed, rot.Grace = secret(t), time.Second
	if res, err := s.Rotate(ctx(t), rot); err != nil || res.Outcome != store.Rotated {
		t.Fatalf("rotate = %v, %v", res.Outcome, err)
	}
	if !keeps(t, s, rot.NextSealed) {
		t.Fatal("the sealed token is not kept within the grace")
	}
	deadline := time.Now().Add(5 * time.Second)
	for keeps(t, s, rot.NextSealed) {
		if time.Now().After(deadline) {
			t.Fatal("the sealed token is still kept 4s after the grace")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rot = rotation("s1", h1, hash(t), time.Now())
	rot.NextSealed, rot.Grace = secret(t), 0
	if res, err := s.Rotate(ctx(t), rot); err != nil || res.Outcome != store.Rotated {
		t.Fatalf("rotate without grace = %v, %v", res.Outcome, err)
	}
	if keeps(t, s, rot.NextSealed) {
		t.Fatal("the sealed token is kept with no grace")
	}
	if _, err := s.Session(ctx(t), "s1", sess.Created); err != nil {
		t.Fatalf("session after the rotations: %v", err)
	}
}

// secret returns 48 random bytes, too many to occur in a store by chance.
func secret(t *testing.T) []byte {
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// keeps says whether any value the store holds contains b.
func keeps(t *testing.T, s store.Store, b []byte) bool {
	t.Helper()
	insp, ok := s.(Inspector)
	if !ok {
		t.Fatalf("%T does not implement storetest.Inspector", s)
	}
	kept, err := insp.Kept(ctx(t))
	must(t, err)
	return slices.ContainsFunc(kept, func(v []byte) bool { return bytes.Contains(v, b) })
}

func testReuseAfterGrace(t *testing.T, s store.Store) {
	sub := subscribe(t, s)
	sess, h0 := newSession(t, s, "s1")
	h1 := hash(t)
	now := sess.Created.Add(time.Minute)
	if res, err := s.Rotate(ctx(t), rotation("s1", h0, h1, now)); err != nil || res.Outcome != store.Rotated {
		t.Fatalf("rotate = %v, %v", res.Outcome, err)
	}
	res, err := s.Rotate(ctx(t), rotation("s1", h0, hash(t), now.Add(grace+time.Millisecond)))
	if err != nil || res.Outcome != store.Reused {
		t.Fatalf("reuse after the grace = %v, %v", res.Outcome, err)
	}
	expect(t, sub, store.Event{Kind: store.SessionRevoked, SessionID: "s1", UserID: "u1"})
	if _, err := s.Session(ctx(t), "s1", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session alive after reuse: %v", err)
	}
	if res, _ := s.Rotate(ctx(t), rotation("s1", h1, hash(t), now)); res.Outcome != store.Gone {
		t.Fatalf("current token after reuse = %v, want gone", res.Outcome)
	}
}

func testOldTokenRevokes(t *testing.T, s store.Store) {
	sess, h := newSession(t, s, "s1")
	now := sess.Created
	var old []store.Hash
	for range store.HistoryLen + 3 {
		next := hash(t)
		now = now.Add(time.Minute)
		if res, err := s.Rotate(ctx(t), rotation("s1", h, next, now)); err != nil || res.Outcome != store.Rotated {
			t.Fatalf("rotate = %v, %v", res.Outcome, err)
		}
		old, h = append(old, h), next
	}
	// The oldest tokens fell out of the history: refused, session kept.
	if res, _ := s.Rotate(ctx(t), rotation("s1", old[0], hash(t), now)); res.Outcome != store.Unknown {
		t.Fatalf("token older than the history = %v, want unknown", res.Outcome)
	}
	// One inside the history revokes.
	mid := old[len(old)-store.HistoryLen]
	if res, _ := s.Rotate(ctx(t), rotation("s1", mid, hash(t), now)); res.Outcome != store.Reused {
		t.Fatalf("old token in the history = %v, want reused", res.Outcome)
	}
	if _, err := s.Session(ctx(t), "s1", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session alive after reuse: %v", err)
	}
}

func testUnknownToken(t *testing.T, s store.Store) {
	sess, h := newSession(t, s, "s1")
	if res, _ := s.Rotate(ctx(t), rotation("s1", hash(t), hash(t), sess.Created)); res.Outcome != store.Unknown {
		t.Fatalf("forged token = %v, want unknown", res.Outcome)
	}
	if res, _ := s.Rotate(ctx(t), rotation("s1", h, hash(t), sess.Created)); res.Outcome != store.Rotated {
		t.Fatalf("forged token disturbed the session: %v", res.Outcome)
	}
}

func testParallelRotate(t *testing.T, s store.Store) {
	sess, h0 := newSession(t, s, "s1")
	now := sess.Created.Add(time.Minute)
	const n = 50
	results := make([]store.RotateResult, n)
	rots := make([]store.Rotation, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		rots[i] = rotation("s1", h0, hash(t), now)
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.Rotate(ctx(t), rots[i])
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("rotate %d: %v", i, errs[i])
		}
		switch results[i].Outcome {
		case store.Rotated:
			if winner >= 0 {
				t.Fatalf("two rotations won: %d and %d", winner, i)
			}
			winner = i
		case store.Replayed:
		default:
			t.Fatalf("rotate %d = %v", i, results[i].Outcome)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation won")
	}
	for i := range n {
		if results[i].Outcome == store.Replayed && string(results[i].Sealed) != string(rots[winner].NextSealed) {
			t.Fatalf("replay %d got another token than the winner's", i)
		}
	}
	if res, _ := s.Rotate(ctx(t), rotation("s1", rots[winner].Next, hash(t), now)); res.Outcome != store.Rotated {
		t.Fatalf("the winner's token = %v, want rotated", res.Outcome)
	}
}

func testRotateRacingRevoke(t *testing.T, s store.Store) {
	for round := range 20 {
		sid := fmt.Sprintf("race%d", round)
		sess, h0 := newSession(t, s, sid)
		next := hash(t)
		var wg sync.WaitGroup
		wg.Go(func() { s.Rotate(ctx(t), rotation(sid, h0, next, sess.Created)) })
		wg.Go(func() { s.RevokeSession(ctx(t), sid, nil) })
		wg.Wait()
		if _, err := s.Session(ctx(t), sid, sess.Created); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("round %d: session alive after revoke: %v", round, err)
		}
		for _, h := range []store.Hash{h0, next} {
			if res, _ := s.Rotate(ctx(t), rotation(sid, h, hash(t), sess.Created)); res.Outcome != store.Gone {
				t.Fatalf("round %d: a token still rotates: %v", round, res.Outcome)
			}
		}
	}
}

func testRevokeSession(t *testing.T, s store.Store) {
	sub := subscribe(t, s)
	sess, h0 := newSession(t, s, "s1")
	wrong := hash(t)
	if _, err := s.RevokeSession(ctx(t), "s1", &wrong); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke with a wrong token = %v", err)
	}
	got, err := s.RevokeSession(ctx(t), "s1", &h0)
	if err != nil || got != sess {
		t.Fatalf("revoke = %+v, %v", got, err)
	}
	expect(t, sub, store.Event{Kind: store.SessionRevoked, SessionID: "s1", UserID: "u1"})
	if _, err := s.RevokeSession(ctx(t), "s1", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second revoke = %v", err)
	}
	if _, err := s.Session(ctx(t), "s1", sess.Created); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session alive: %v", err)
	}
}

func testRevokeUser(t *testing.T, s store.Store) {
	sub := subscribe(t, s)
	a, _ := newSession(t, s, "sa")
	newSession(t, s, "sb")
	other := store.Session{ID: "sc", UserID: "u2", Created: a.Created, Expires: a.Expires}
	must(t, s.CreateSession(ctx(t), other, hash(t)))

	ids, err := s.RevokeUserSessions(ctx(t), "u1")
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"sa", "sb"}) {
		t.Fatalf("RevokeUserSessions = %v, %v; want sa, sb", ids, err)
	}
	var seen []string
	for range 2 {
		select {
		case e := <-sub.C():
			if e.Kind == store.Reset {
				continue
			}
			if e.Kind != store.SessionRevoked || e.UserID != "u1" {
				t.Fatalf("event %+v", e)
			}
			seen = append(seen, e.SessionID)
		case <-time.After(5 * time.Second):
			t.Fatal("missing revocation events")
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"sa", "sb"}) {
		t.Fatalf("revoked %v", seen)
	}
	if _, err := s.Session(ctx(t), "sc", a.Created); err != nil {
		t.Fatalf("another user's session was revoked: %v", err)
	}
	if ids, _ := s.RevokeUserSessions(ctx(t), "u1"); len(ids) != 0 {
		t.Fatalf("second RevokeUserSessions = %v", ids)
	}
}

func testAccess(t *testing.T, s store.Store) {
	sub := subscribe(t, s)
	must(t, s.Grant(ctx(t), "u1", "c1"))
	must(t, s.Grant(ctx(t), "u2", "c1"))
	must(t, s.Grant(ctx(t), "u1", "c2"))
	must(t, s.Grant(ctx(t), "u1", "c2"))
	ok, err := s.Allowed(ctx(t), "u1", "c1")
	if err != nil || !ok {
		t.Fatalf("Allowed = %v, %v", ok, err)
	}
	if ok, _ := s.Allowed(ctx(t), "u3", "c1"); ok {
		t.Fatal("a stranger is allowed")
	}
	if m, _ := s.Members(ctx(t), "c1", 10); !slices.Equal(m, []string{"u1", "u2"}) {
		t.Fatalf("Members = %v", m)
	}
	if m, _ := s.Members(ctx(t), "c1", 1); !slices.Equal(m, []string{"u1"}) {
		t.Fatalf("Members with limit 1 = %v", m)
	}
	if c, _ := s.Conversations(ctx(t), "u1", 10); !slices.Equal(c, []string{"c1", "c2"}) {
		t.Fatalf("Conversations = %v", c)
	}
	if m, err := s.Members(ctx(t), "none", 10); err != nil || len(m) != 0 {
		t.Fatalf("Members of nothing = %v, %v", m, err)
	}

	removed, err := s.RevokeAccess(ctx(t), "u1", "c1")
	if err != nil || !removed {
		t.Fatalf("RevokeAccess = %v, %v", removed, err)
	}
	expect(t, sub, store.Event{Kind: store.AccessRevoked, UserID: "u1", ConversationID: "c1"})
	if ok, _ := s.Allowed(ctx(t), "u1", "c1"); ok {
		t.Fatal("still allowed after revoke")
	}
	if c, _ := s.Conversations(ctx(t), "u1", 10); !slices.Equal(c, []string{"c2"}) {
		t.Fatalf("Conversations after revoke = %v", c)
	}
	if removed, _ := s.RevokeAccess(ctx(t), "u1", "c1"); removed {
		t.Fatal("second RevokeAccess removed something")
	}
	// No event for the no-op: the next one seen is the next real revoke.
	must(t, s.Grant(ctx(t), "u9", "c9"))
	if _, err := s.RevokeAccess(ctx(t), "u9", "c9"); err != nil {
		t.Fatal(err)
	}
	expect(t, sub, store.Event{Kind: store.AccessRevoked, UserID: "u9", ConversationID: "c9"})
}
