package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"switchboard/libs/config"
	"switchboard/libs/redistest"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/app"
)

// The abuse tests send what a misbehaving client would, over real gRPC on
// loopback, and check both the documented answer and that a well-behaved
// client is served afterwards.

// servesDemo checks that the demo user still logs in (from addr, through
// the trusted proxy, when addr is set) and that its token validates.
func servesDemo(t *testing.T, r *replica, addr string) {
	t.Helper()
	c := r.client
	if addr != "" {
		c = r.admin
	}
	resp, err := c.Login(ctxT(t), &authv1.LoginRequest{Email: app.DemoEmail, Password: app.DemoPassword, ClientAddress: addr})
	if err != nil {
		t.Fatalf("a well-behaved login: %v", err)
	}
	v, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: resp.GetTokens().GetAccessToken()})
	if err != nil || v.GetUserId() != app.DemoUserID {
		t.Fatalf("a well-behaved Validate = %v, %v", v, err)
	}
}

// TestAbuseOversizedMessages: a message over 64KiB is refused with
// RESOURCE_EXHAUSTED before it is decoded; the connection is served after.
func TestAbuseOversizedMessages(t *testing.T) {
	r := start(t, env(nil), nil)
	huge := strings.Repeat("A", 65<<10)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"validate", func() error {
			_, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: huge})
			return err
		}},
		{"login", func() error {
			_, err := r.client.Login(ctxT(t), &authv1.LoginRequest{Email: app.DemoEmail, Password: huge})
			return err
		}},
		{"refresh", func() error {
			_, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: huge})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); code(err) != codes.ResourceExhausted {
				t.Fatalf("oversized %s = %v, want RESOURCE_EXHAUSTED", tc.name, err)
			}
			servesDemo(t, r, "")
		})
	}
}

// TestAbuseCallWithoutDeadlineIsBounded: with the store stalled, a call
// whose client set no deadline is cut by AUTH_MAX_CALL_TIME and answered
// DEADLINE_EXCEEDED (go-redis's own read timeout, 3s, would answer
// UNAVAILABLE); once the store is back, the demo user is served.
func TestAbuseCallWithoutDeadlineIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, env(map[string]string{
		"AUTH_REDIS_URL": srv.URL(), "AUTH_SIGNING_KEY_FILE": keyFile(t), "AUTH_MAX_CALL_TIME": "200ms",
	}), nil)
	p := issue(t, r, nil, "stalled-user")

	srv.Pause()
	t.Cleanup(srv.Resume)
	_, err := r.client.Refresh(context.Background(), &authv1.RefreshRequest{RefreshToken: p.GetRefreshToken()})
	if code(err) != codes.DeadlineExceeded {
		t.Fatalf("Refresh without deadline on a stalled store = %v, want DEADLINE_EXCEEDED", err)
	}
	srv.Resume()
	eventually(t, "a Refresh once the store is back", func() bool {
		_, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: p.GetRefreshToken()})
		return err == nil
	})
}

// floodLogins sends n wrong-password logins at once through c, the i-th
// for email(i) from client address addr ("" = the peer's), and counts the
// answers by code; a RESOURCE_EXHAUSTED must carry retry-after.
func floodLogins(t *testing.T, c authv1.AuthServiceClient, n int, email func(int) string, addr string) map[codes.Code]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[codes.Code]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var header metadata.MD
			_, err := c.Login(ctxT(t), &authv1.LoginRequest{
				Email: email(i), Password: "wrong-password", ClientAddress: addr,
			}, grpc.Header(&header))
			if code(err) == codes.ResourceExhausted && len(header.Get("retry-after")) == 0 {
				t.Errorf("a rate-limited login has no retry-after")
			}
			mu.Lock()
			counts[code(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts
}

// TestAbuseLoginFloodOneAccount: of a flood of logins for one account,
// AUTH_LOGIN_PER_ACCOUNT are answered and the rest are RESOURCE_EXHAUSTED;
// other accounts still log in from the same address.
func TestAbuseLoginFloodOneAccount(t *testing.T) {
	r := start(t, env(map[string]string{"AUTH_LOGIN_PER_ACCOUNT": "3", "AUTH_LOGIN_PER_ADDRESS": "1000"}), nil)
	got := floodLogins(t, r.client, 40, func(int) string { return "victim@example.com" }, "")
	if got[codes.Unauthenticated] != 3 || got[codes.ResourceExhausted] != 37 {
		t.Fatalf("flood of one account answered %v, want 3 UNAUTHENTICATED and 37 RESOURCE_EXHAUSTED", got)
	}
	servesDemo(t, r, "")
	// The victim stays locked, whatever the case of its address.
	_, err := r.client.Login(ctxT(t), &authv1.LoginRequest{Email: "Victim@Example.com", Password: "wrong-password"})
	if code(err) != codes.ResourceExhausted {
		t.Fatalf("the flooded account in other case = %v", err)
	}
}

// TestAbuseLoginFloodOneAddress: of a flood of logins for many accounts
// from one address, AUTH_LOGIN_PER_ADDRESS are answered and the rest are
// RESOURCE_EXHAUSTED, through a trusted proxy as directly; users at other
// addresses still log in.
func TestAbuseLoginFloodOneAddress(t *testing.T) {
	r := start(t, env(map[string]string{"AUTH_LOGIN_PER_ACCOUNT": "1000", "AUTH_LOGIN_PER_ADDRESS": "5"}), nil)
	email := func(i int) string { return fmt.Sprintf("user%d@example.com", i) }

	proxied := floodLogins(t, r.admin, 40, email, "198.51.100.7")
	if proxied[codes.Unauthenticated] != 5 || proxied[codes.ResourceExhausted] != 35 {
		t.Fatalf("proxied flood from one address answered %v, want 5 and 35", proxied)
	}
	servesDemo(t, r, "198.51.100.8")

	direct := floodLogins(t, r.client, 40, email, "")
	if direct[codes.Unauthenticated] != 5 || direct[codes.ResourceExhausted] != 35 {
		t.Fatalf("direct flood from loopback answered %v, want 5 and 35", direct)
	}
	servesDemo(t, r, "198.51.100.9")
}

// forgeries are access tokens a forger could send, built from a real one.
func forgeries(real string) []string {
	parts := strings.Split(real, ".")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	sig := []byte(parts[2])
	sig[len(sig)/2] ^= 1
	return []string{
		b64(`{"alg":"none","typ":"at+jwt"}`) + "." + parts[1] + ".",
		parts[0] + "." + parts[1] + "." + string(sig),
		parts[0] + "." + b64(`{"sub":"admin","sid":"x"}`) + "." + parts[2],
		b64(`{"alg":"EdDSA","typ":"at+jwt","kid":"forged"}`) + "." + parts[1] + "." + parts[2],
		strings.Repeat("A", 4000),
	}
}

// TestAbuseForgedTokenFlood: while forged tokens flood Validate, each is
// UNAUTHENTICATED and a valid token still validates. How fast it stays is
// BenchmarkValidateUnderForgedFlood's to show.
func TestAbuseForgedTokenFlood(t *testing.T) {
	r := start(t, env(nil), nil)
	p := login(t, r, nil)
	forged := forgeries(p.GetAccessToken())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				tok := forged[(w+i)%len(forged)]
				if _, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: tok}); code(err) != codes.Unauthenticated {
					t.Errorf("forged token %d = %v, want UNAUTHENTICATED", (w+i)%len(forged), err)
					return
				}
			}
		})
	}
	for range 20 {
		v, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: p.GetAccessToken()})
		if err != nil || v.GetUserId() != app.DemoUserID {
			t.Fatalf("a valid token during the flood = %v, %v", v, err)
		}
	}
	wg.Wait()
	servesDemo(t, r, "")
}

// TestAbuseRevocationWatchFlood: of many WatchRevocations streams opened at
// once, AUTH_MAX_REVOCATION_WATCHERS are served and the rest get
// RESOURCE_EXHAUSTED; the served ones still receive revocations, a freed
// place can be taken again, and logins are served throughout.
func TestAbuseRevocationWatchFlood(t *testing.T) {
	const limit, attempts = 3, 20
	r := start(t, env(map[string]string{"AUTH_MAX_REVOCATION_WATCHERS": fmt.Sprint(limit)}), nil)

	type opened struct {
		stream grpc.ServerStreamingClient[authv1.WatchRevocationsResponse]
		cancel context.CancelFunc
	}
	streams := make(chan opened, attempts)
	refusals := make(chan error, attempts)
	var wg sync.WaitGroup
	for range attempts {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(ctxT(t))
			s, err := r.admin.WatchRevocations(ctx, &authv1.WatchRevocationsRequest{})
			if err == nil {
				_, err = s.Header()
			}
			if err != nil {
				cancel()
				refusals <- err
				return
			}
			streams <- opened{s, cancel}
		})
	}
	wg.Wait()
	close(streams)
	close(refusals)
	refused := 0
	for err := range refusals {
		if code(err) != codes.ResourceExhausted {
			t.Fatalf("a refused watch = %v, want RESOURCE_EXHAUSTED", err)
		}
		refused++
	}

	victim := issue(t, r, nil, "watched-user")
	if _, err := r.client.Logout(ctxT(t), &authv1.LogoutRequest{RefreshToken: victim.GetRefreshToken()}); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	var served []opened
	for o := range streams {
		m, err := o.stream.Recv()
		switch {
		case err == nil && m.GetSession().GetSessionId() == victim.GetSessionId():
			served = append(served, o)
			t.Cleanup(o.cancel)
		case code(err) == codes.ResourceExhausted:
			refused++
			o.cancel()
		default:
			o.cancel()
			t.Fatalf("a watch got %v, %v", m, err)
		}
	}
	if len(served) != limit || refused != attempts-limit {
		t.Fatalf("%d watches served and %d refused, want %d and %d", len(served), refused, limit, attempts-limit)
	}
	servesDemo(t, r, "")

	served[0].cancel()
	eventually(t, "a watch in a freed place", func() bool {
		ctx, cancel := context.WithCancel(ctxT(t))
		s, err := r.admin.WatchRevocations(ctx, &authv1.WatchRevocationsRequest{})
		if err == nil {
			_, err = s.Header()
		}
		if err != nil {
			cancel()
			return false
		}
		again := issue(t, r, nil, "watched-again")
		if _, err := r.client.Logout(ctxT(t), &authv1.LogoutRequest{RefreshToken: again.GetRefreshToken()}); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		m, err := s.Recv()
		if err != nil {
			cancel()
			return false
		}
		t.Cleanup(cancel)
		return m.GetSession().GetSessionId() == again.GetSessionId()
	})
}

// TestAbuseLimitsConfig: the bounds these tests rely on have their
// documented defaults, and bad values are refused by name.
func TestAbuseLimitsConfig(t *testing.T) {
	c, err := app.Load(config.New(config.Map(nil)))
	if err != nil || c.MaxCallTime != 10*time.Second || c.MaxRevocationWatchers != 256 {
		t.Fatalf("defaults: call time %s, watchers %d, %v", c.MaxCallTime, c.MaxRevocationWatchers, err)
	}
	for name, bad := range map[string]string{
		"AUTH_MAX_CALL_TIME": "50ms", "AUTH_MAX_REVOCATION_WATCHERS": "0",
	} {
		_, err := app.Load(config.New(config.Map(map[string]string{name: bad})))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v, want a refusal naming it", name, bad, err)
		}
	}
}
