package app_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"switchboard/libs/config"
	"switchboard/libs/redistest"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/app"
)

// AUTH_DEMO is off by default, forced on in the embedded default.
func TestLoadDemo(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want bool
	}{
		{"embedded", nil, true},
		{"redis", map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, false},
		{"redis with AUTH_DEMO", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "AUTH_DEMO": "1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := app.Load(config.New(config.Map(tt.vars)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Demo != tt.want || strings.Contains(c.String(), app.DemoEmail) != tt.want {
				t.Fatalf("Demo = %v (%s), want %v", c.Demo, c, tt.want)
			}
		})
	}
}

// With Redis the demo user and conversation are there only under
// AUTH_DEMO; replicas and restarts on the same store all seed, and the
// first one's user is kept.
func TestDemoOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	vars := func(demo string) map[string]string {
		return env(map[string]string{"AUTH_REDIS_URL": srv.URL(), "AUTH_SIGNING_KEY_FILE": keyFile(t), "AUTH_DEMO": demo})
	}
	plain := start(t, vars("false"), nil)
	_, err := plain.client.Login(ctxT(t), &authv1.LoginRequest{Email: app.DemoEmail, Password: app.DemoPassword})
	if code(err) != codes.Unauthenticated {
		t.Fatalf("demo login on Redis without AUTH_DEMO = %v, want Unauthenticated", err)
	}
	seen := &secrets{}
	for i := range 2 {
		r := start(t, vars("1"), seen)
		if p := login(t, r, seen); p.GetUserId() != app.DemoUserID {
			t.Fatalf("replica %d: demo login as %q", i, p.GetUserId())
		}
		a, err := r.admin.Authorize(ctxT(t), &authv1.AuthorizeRequest{UserId: app.DemoUserID, ConversationId: app.DemoConversation})
		if err != nil || !a.GetAllowed() {
			t.Fatalf("replica %d: Authorize demo = %v, %v", i, a, err)
		}
		if kept := strings.Contains(r.logs.String(), "demo user already in the store"); kept != (i == 1) {
			t.Fatalf("replica %d: logged a kept demo user: %v", i, kept)
		}
	}
}
