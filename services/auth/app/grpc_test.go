package app_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/app"
)

func TestDemoLoginValidateAuthorize(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	p := login(t, r, seen)
	if p.GetUserId() != app.DemoUserID || p.GetRefreshToken() == "" {
		t.Fatalf("pair = user %q", p.GetUserId())
	}
	for range 2 { // a miss, then a hit
		v, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: p.GetAccessToken()})
		if err != nil || v.GetUserId() != app.DemoUserID || v.GetSessionId() != p.GetSessionId() {
			t.Fatalf("Validate = %v, %v", v, err)
		}
	}
	a, err := r.admin.Authorize(ctxT(t), &authv1.AuthorizeRequest{UserId: app.DemoUserID, ConversationId: app.DemoConversation})
	if err != nil || !a.GetAllowed() {
		t.Fatalf("Authorize demo = %v, %v", a, err)
	}
	a, err = r.admin.Authorize(ctxT(t), &authv1.AuthorizeRequest{UserId: app.DemoUserID, ConversationId: "other"})
	if err != nil || a.GetAllowed() {
		t.Fatalf("Authorize other = %v, %v", a, err)
	}
	c, err := r.admin.ListConversations(ctxT(t), &authv1.ListConversationsRequest{UserId: app.DemoUserID})
	if err != nil || !slices.Equal(c.GetConversationIds(), []string{app.DemoConversation}) {
		t.Fatalf("ListConversations = %v, %v", c, err)
	}
	_, err = r.client.Login(ctxT(t), &authv1.LoginRequest{Email: app.DemoEmail, Password: "wrong-password"})
	if code(err) != codes.Unauthenticated {
		t.Fatalf("wrong password = %v", err)
	}
	_, err = r.client.Login(ctxT(t), &authv1.LoginRequest{Email: "nobody@example.com", Password: app.DemoPassword})
	if code(err) != codes.Unauthenticated {
		t.Fatalf("unknown user = %v", err)
	}
}

func TestTrustedCallsNeedTheCredential(t *testing.T) {
	r := start(t, env(nil), nil)
	calls := map[string]func(c authv1.AuthServiceClient) error{
		"IssueSession": func(c authv1.AuthServiceClient) error {
			_, err := c.IssueSession(ctxT(t), &authv1.IssueSessionRequest{UserId: "u1"})
			return err
		},
		"RevokeSessions": func(c authv1.AuthServiceClient) error {
			_, err := c.RevokeSessions(ctxT(t), &authv1.RevokeSessionsRequest{UserId: "u1"})
			return err
		},
		"CreateUser": func(c authv1.AuthServiceClient) error {
			_, err := c.CreateUser(ctxT(t), &authv1.CreateUserRequest{Email: "n@example.com", Password: "password-1"})
			return err
		},
		"GrantAccess": func(c authv1.AuthServiceClient) error {
			_, err := c.GrantAccess(ctxT(t), &authv1.GrantAccessRequest{UserId: "u1", ConversationId: "c1"})
			return err
		},
		"RevokeAccess": func(c authv1.AuthServiceClient) error {
			_, err := c.RevokeAccess(ctxT(t), &authv1.RevokeAccessRequest{UserId: "u1", ConversationId: "c1"})
			return err
		},
		"ListMembers": func(c authv1.AuthServiceClient) error {
			_, err := c.ListMembers(ctxT(t), &authv1.ListMembersRequest{ConversationId: "c1"})
			return err
		},
		"Authorize": func(c authv1.AuthServiceClient) error {
			_, err := c.Authorize(ctxT(t), &authv1.AuthorizeRequest{UserId: "u1", ConversationId: "c1"})
			return err
		},
		"ListConversations": func(c authv1.AuthServiceClient) error {
			_, err := c.ListConversations(ctxT(t), &authv1.ListConversationsRequest{UserId: "u1"})
			return err
		},
		"Recheck": func(c authv1.AuthServiceClient) error {
			_, err := c.Recheck(ctxT(t), &authv1.RecheckRequest{SessionIds: []string{"s1"}})
			return err
		},
		"WatchRevocations": func(c authv1.AuthServiceClient) error {
			s, err := c.WatchRevocations(ctxT(t), &authv1.WatchRevocationsRequest{})
			if err != nil {
				return err
			}
			_, err = s.Header()
			if err == nil {
				_, err = s.Recv() // with the credential this blocks; not called then
			}
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(r.client); code(err) != codes.Unauthenticated {
				t.Fatalf("without the credential: %v", err)
			}
			if name == "WatchRevocations" {
				return
			}
			if err := call(r.admin); err != nil {
				t.Fatalf("with the credential: %v", err)
			}
		})
	}
	wrong := authv1.NewAuthServiceClient(dial(t, r.svc.GRPCAddr, serverCred("not-it")))
	if _, err := wrong.IssueSession(ctxT(t), &authv1.IssueSessionRequest{UserId: "u1"}); code(err) != codes.Unauthenticated {
		t.Fatalf("with a wrong credential: %v", err)
	}
}

func TestValidateRefusesForgedTokensOverGRPC(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	p := login(t, r, seen)
	parts := strings.Split(p.GetAccessToken(), ".")
	b64 := base64.RawURLEncoding.EncodeToString
	cases := map[string]string{
		"alg none":         b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".",
		"HS256 header":     b64([]byte(`{"alg":"HS256","typ":"at+jwt"}`)) + "." + parts[1] + "." + parts[2],
		"tampered payload": parts[0] + "." + b64([]byte(`{"sub":"admin"}`)) + "." + parts[2],
		"refresh token":    p.GetRefreshToken(),
		"oversized":        p.GetAccessToken() + strings.Repeat("A", 5000),
		"empty":            "",
		"garbage":          "not.a.jwt",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: tok})
			if code(err) != codes.Unauthenticated {
				t.Fatalf("Validate = %v", err)
			}
			if len(tok) > 10 && strings.Contains(err.Error(), tok[len(tok)-10:]) {
				t.Fatal("the error quotes the token")
			}
		})
	}
}

func TestRefreshRotationGraceAndReuse(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	p0 := login(t, r, seen)
	refresh := func(rt string) (*authv1.TokenPair, error) {
		resp, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: rt})
		return seen.add(resp.GetTokens()), err
	}

	p1, err := refresh(p0.GetRefreshToken())
	if err != nil || p1.GetRefreshToken() == p0.GetRefreshToken() || p1.GetSessionId() != p0.GetSessionId() {
		t.Fatalf("rotation: %v", err)
	}
	// The previous token within the grace: the current pair.
	again, err := refresh(p0.GetRefreshToken())
	if err != nil || again.GetRefreshToken() != p1.GetRefreshToken() {
		t.Fatalf("replay within the grace: %v", err)
	}
	if !p1.GetSessionExpiresAt().AsTime().Equal(p0.GetSessionExpiresAt().AsTime()) {
		t.Fatal("rotation extended the session")
	}
	p2, err := refresh(p1.GetRefreshToken())
	if err != nil {
		t.Fatal(err)
	}
	// p0 is now older than the previous token: reuse revokes the session.
	if _, err := refresh(p0.GetRefreshToken()); code(err) != codes.Unauthenticated {
		t.Fatalf("reuse = %v", err)
	}
	if _, err := refresh(p2.GetRefreshToken()); code(err) != codes.Unauthenticated {
		t.Fatalf("current token after reuse = %v", err)
	}
	if _, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: p2.GetAccessToken()}); code(err) != codes.Unauthenticated {
		t.Fatalf("access token after reuse = %v", err)
	}
	// A well-formed token the session never had changes nothing.
	p3 := login(t, r, seen)
	forged := "rt1." + p3.GetSessionId() + "." + strings.Repeat("A", 43)
	if _, err := refresh(forged); code(err) != codes.Unauthenticated {
		t.Fatalf("forged refresh = %v", err)
	}
	if _, err := refresh(p3.GetRefreshToken()); err != nil {
		t.Fatalf("forged token disturbed the session: %v", err)
	}
}

func TestParallelRefreshYieldsOnePair(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend.name, func(t *testing.T) {
			seen := &secrets{}
			r := start(t, env(backend.vars), seen)
			p0 := issue(t, r, seen, "u-par")
			const n = 50
			got := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					resp, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: p0.GetRefreshToken()})
					got[i], errs[i] = seen.add(resp.GetTokens()).GetRefreshToken(), err
				})
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("refresh %d: %v", i, errs[i])
				}
				if got[i] != got[0] {
					t.Fatalf("refresh %d got another token: more than one new pair", i)
				}
			}
			if _, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: got[0]}); err != nil {
				t.Fatalf("the one new token does not refresh: %v", err)
			}
		})
	}
}

func TestRefreshRacingLogoutLeavesNothingAlive(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend.name, func(t *testing.T) {
			seen := &secrets{}
			r := start(t, env(backend.vars), seen)
			for round := range 10 {
				p := issue(t, r, seen, fmt.Sprintf("u-race-%d", round))
				var wg sync.WaitGroup
				var fresh *authv1.TokenPair
				wg.Go(func() {
					resp, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: p.GetRefreshToken()})
					if err == nil {
						fresh = seen.add(resp.GetTokens())
					}
				})
				wg.Go(func() {
					r.client.Logout(ctxT(t), &authv1.LogoutRequest{RefreshToken: p.GetRefreshToken()})
				})
				wg.Wait()
				alive := []*authv1.TokenPair{p}
				if fresh != nil {
					alive = append(alive, fresh)
				}
				for _, q := range alive {
					if _, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: q.GetAccessToken()}); code(err) != codes.Unauthenticated {
						t.Fatalf("round %d: an access token survived: %v", round, err)
					}
					if _, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: q.GetRefreshToken()}); code(err) != codes.Unauthenticated {
						t.Fatalf("round %d: a refresh token survived: %v", round, err)
					}
				}
			}
		})
	}
}

func TestLoginRateLimited(t *testing.T) {
	r := start(t, env(map[string]string{"AUTH_LOGIN_PER_ACCOUNT": "3", "AUTH_LOGIN_PER_ADDRESS": "5"}), nil)
	try := func(email string) codes.Code {
		_, err := r.client.Login(ctxT(t), &authv1.LoginRequest{Email: email, Password: "wrong-password"})
		return code(err)
	}
	for i := range 3 {
		if c := try("victim@example.com"); c != codes.Unauthenticated {
			t.Fatalf("attempt %d = %v", i, c)
		}
	}
	if c := try("victim@example.com"); c != codes.ResourceExhausted {
		t.Fatalf("fourth attempt on one account = %v, want ResourceExhausted", c)
	}
	// Two more accounts from the same address exhaust the address.
	try("a@example.com")
	try("b@example.com")
	if c := try("c@example.com"); c != codes.ResourceExhausted {
		t.Fatalf("sixth attempt from one address = %v, want ResourceExhausted", c)
	}
}

func TestCreateUserThenLogin(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	u, err := r.admin.CreateUser(ctxT(t), &authv1.CreateUserRequest{Email: "New@Example.com", Password: "a-long-password"})
	if err != nil || u.GetUserId() == "" {
		t.Fatalf("CreateUser = %v, %v", u, err)
	}
	if _, err := r.admin.CreateUser(ctxT(t), &authv1.CreateUserRequest{Email: "new@example.com", Password: "a-long-password"}); code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate = %v", err)
	}
	bad := []*authv1.CreateUserRequest{
		{Email: "not an email", Password: "a-long-password"},
		{Email: "x@example.com", Password: "short"},
		{Email: "y@example.com", Password: "a-long-password", UserId: "bad id!"},
	}
	for _, b := range bad {
		if _, err := r.admin.CreateUser(ctxT(t), b); code(err) != codes.InvalidArgument {
			t.Errorf("CreateUser(%q, %q) = %v", b.Email, b.UserId, err)
		}
	}
	resp, err := r.client.Login(ctxT(t), &authv1.LoginRequest{Email: "new@example.com", Password: "a-long-password"})
	if err != nil || seen.add(resp.GetTokens()).GetUserId() != u.GetUserId() {
		t.Fatalf("login as the new user: %v", err)
	}
}

// client_address counts only when a trusted proxy sends it.
func TestLoginClientAddressTrustedOnly(t *testing.T) {
	r := start(t, env(map[string]string{"AUTH_LOGIN_PER_ACCOUNT": "100", "AUTH_LOGIN_PER_ADDRESS": "2"}), nil)
	try := func(c authv1.AuthServiceClient, n int, addr string) codes.Code {
		_, err := c.Login(ctxT(t), &authv1.LoginRequest{
			Email: fmt.Sprintf("user%d@example.com", n), Password: "wrong-password", ClientAddress: addr,
		})
		return code(err)
	}
	// Through the proxy: one address is limited, another is not.
	try(r.admin, 1, "198.51.100.1")
	try(r.admin, 2, "198.51.100.1")
	if c := try(r.admin, 3, "198.51.100.1"); c != codes.ResourceExhausted {
		t.Fatalf("third attempt of one proxied address = %v", c)
	}
	if c := try(r.admin, 4, "198.51.100.2"); c != codes.Unauthenticated {
		t.Fatalf("another proxied address = %v", c)
	}
	// An end user's claimed address is ignored: its own address counts.
	try(r.client, 5, "203.0.113.1")
	try(r.client, 6, "203.0.113.2")
	if c := try(r.client, 7, "203.0.113.3"); c != codes.ResourceExhausted {
		t.Fatalf("an end user escaped the limit by claiming addresses: %v", c)
	}
}
