package app_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"switchboard/libs/redistest"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/authority"
)

// Recheck reports, on both stores, the sessions ended and the accesses
// revoked among those asked about, and nothing else.
func TestRecheck(t *testing.T) {
	stores := map[string]func(t *testing.T) map[string]string{
		"memory": func(*testing.T) map[string]string { return env(nil) },
		"redis": func(t *testing.T) map[string]string {
			return env(map[string]string{"AUTH_REDIS_URL": redistest.Start(t).URL(), "AUTH_SIGNING_KEY_FILE": keyFile(t)})
		},
	}
	for name, vars := range stores {
		t.Run(name, func(t *testing.T) { testRecheck(t, start(t, vars(t), nil)) })
	}
}

func testRecheck(t *testing.T, r *replica) {
	ended, alive := issue(t, r, nil, "u-re"), issue(t, r, nil, "u-re")
	if _, err := r.client.Logout(ctxT(t), &authv1.LogoutRequest{RefreshToken: ended.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c-kept", "c-gone"} {
		if _, err := r.admin.GrantAccess(ctxT(t), &authv1.GrantAccessRequest{UserId: "u-re", ConversationId: c}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.admin.RevokeAccess(ctxT(t), &authv1.RevokeAccessRequest{UserId: "u-re", ConversationId: "c-gone"}); err != nil {
		t.Fatal(err)
	}

	resp, err := r.admin.Recheck(ctxT(t), &authv1.RecheckRequest{
		SessionIds: []string{ended.GetSessionId(), alive.GetSessionId(), "never-issued"},
		Accesses: []*authv1.Access{
			{UserId: "u-re", ConversationId: "c-kept"},
			{UserId: "u-re", ConversationId: "c-gone"},
			{UserId: "u-other", ConversationId: "c-kept"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{ended.GetSessionId(), "never-issued"}; !slices.Equal(resp.GetEndedSessionIds(), want) {
		t.Fatalf("ended = %v, want %v", resp.GetEndedSessionIds(), want)
	}
	var revoked []string
	for _, ac := range resp.GetRevokedAccesses() {
		revoked = append(revoked, ac.GetUserId()+"/"+ac.GetConversationId())
	}
	if want := []string{"u-re/c-gone", "u-other/c-kept"}; !slices.Equal(revoked, want) {
		t.Fatalf("revoked = %v, want %v", revoked, want)
	}
}

func TestRecheckRefusesMalformedAndOversizedRequests(t *testing.T) {
	r := start(t, env(nil), nil)
	tooMany := make([]string, authority.MaxRecheck+1)
	for i := range tooMany {
		tooMany[i] = "s"
	}
	for name, req := range map[string]*authv1.RecheckRequest{
		"too many sessions": {SessionIds: tooMany},
		"empty session id":  {SessionIds: []string{""}},
		"bad access":        {Accesses: []*authv1.Access{{UserId: "u", ConversationId: "no spaces"}}},
	} {
		if _, err := r.admin.Recheck(ctxT(t), req); code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}
