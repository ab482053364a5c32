package app_test

import (
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	authv1 "switchboard/proto/switchboard/auth/v1"
)

// logoutAll is one way to ask for the end of every session of the user
// whose tokens are in p.
type logoutAll struct {
	name   string
	logout func(t *testing.T, r *replica, p *authv1.TokenPair)
}

var logoutAllWays = []logoutAll{
	{"grpc access token", func(t *testing.T, r *replica, p *authv1.TokenPair) {
		grpcLogout(t, r, &authv1.LogoutRequest{AccessToken: p.GetAccessToken(), AllSessions: true})
	}},
	{"grpc refresh token", func(t *testing.T, r *replica, p *authv1.TokenPair) {
		grpcLogout(t, r, &authv1.LogoutRequest{RefreshToken: p.GetRefreshToken(), AllSessions: true})
	}},
	{"http bearer and form", func(t *testing.T, r *replica, p *authv1.TokenPair) {
		httpLogout(t, r, form, "all_sessions=true", p.GetAccessToken())
	}},
	{"http json refresh token", func(t *testing.T, r *replica, p *authv1.TokenPair) {
		body := fmt.Sprintf(`{"refresh_token":%q,"all_sessions":true}`, p.GetRefreshToken())
		httpLogout(t, r, "application/json", body, "")
	}},
}

func grpcLogout(t *testing.T, r *replica, req *authv1.LogoutRequest) {
	t.Helper()
	if _, err := r.client.Logout(ctxT(t), req); err != nil {
		t.Fatalf("Logout: %v", err)
	}
}

func httpLogout(t *testing.T, r *replica, contentType, body, bearer string) {
	t.Helper()
	header := map[string]string{}
	if bearer != "" {
		header["Authorization"] = "Bearer " + bearer
	}
	if resp, out := post(t, r, "/v1/logout", contentType, body, header); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /v1/logout: %d %s", resp.StatusCode, out.Error)
	}
}

// alive says whether a pair's access token validates and, when it does,
// whether its refresh token still refreshes; it fails the test when the
// two disagree.
func alive(t *testing.T, r *replica, p *authv1.TokenPair) bool {
	t.Helper()
	_, verr := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: p.GetAccessToken()})
	if verr != nil {
		if code(verr) != codes.Unauthenticated {
			t.Fatalf("Validate: %v", verr)
		}
		if _, err := r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: p.GetRefreshToken()}); code(err) != codes.Unauthenticated {
			t.Fatalf("the refresh token of an ended session: %v", err)
		}
	}
	return verr == nil
}

// Logging out with all_sessions ends every session of the user, over gRPC
// and HTTP, with an access or a refresh token, on both stores; other
// users' sessions live on, and a logout without it ends one session only.
func TestLogoutAllSessions(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend.name, func(t *testing.T) {
			seen := &secrets{}
			r := start(t, env(backend.vars), seen)
			other := issue(t, r, seen, "u-bystander")
			for i, way := range logoutAllWays {
				t.Run(way.name, func(t *testing.T) {
					user := fmt.Sprintf("u-all-%d", i)
					mine := []*authv1.TokenPair{issue(t, r, seen, user), issue(t, r, seen, user), issue(t, r, seen, user)}
					single := issue(t, r, seen, user)
					grpcLogout(t, r, &authv1.LogoutRequest{AccessToken: single.GetAccessToken()})
					if alive(t, r, single) || !alive(t, r, mine[0]) {
						t.Fatal("a logout without all_sessions did not end exactly its own session")
					}
					way.logout(t, r, mine[1])
					for j, p := range mine {
						if alive(t, r, p) {
							t.Fatalf("session %d of the user survived", j)
						}
					}
					if !alive(t, r, other) {
						t.Fatal("another user's session was ended")
					}
				})
			}
		})
	}
}
