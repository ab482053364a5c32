package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/grpctest"
	"switchboard/libs/proctest"
	"switchboard/libs/redistest"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/gateway"
)

// realAuth is the auth service run as a process, with a client that
// carries its service credential.
type realAuth struct {
	proc    *proctest.Proc
	http    string // http://host:port
	metrics string // http://host:port of the metrics listener
	admin   authv1.AuthServiceClient
}

const authCred = "auth-credential"

// startRealAuth runs services/auth on loopback until the test ends, with
// its in-memory store unless env says otherwise. Its client reconnects
// within half a second once auth is back.
func startRealAuth(t *testing.T, env ...string) (*realAuth, *grpc.ClientConn) {
	t.Helper()
	t.Cleanup(proctest.RemoveBuilds) // runs after the process is stopped
	grpcAddr, httpAddr, metricsAddr := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)
	env = append([]string{
		"AUTH_GRPC_ADDR=" + grpcAddr, "AUTH_HTTP_ADDR=" + httpAddr, "AUTH_METRICS_ADDR=" + metricsAddr,
		"AUTH_SERVICE_CREDENTIAL=" + authCred, "AUTH_LOG_LEVEL=warn",
		"AUTH_ARGON2_TIME=1", "AUTH_ARGON2_MEMORY=64KiB", "AUTH_ARGON2_THREADS=1",
	}, env...)
	p := proctest.Start(t, proctest.Build(t, "auth"), env...)
	a := &realAuth{proc: p, http: "http://" + httpAddr, metrics: "http://" + metricsAddr}
	p.WaitHTTP(t, a.http+"/readyz", time.Minute)
	quick := grpc.ConnectParams{Backoff: backoff.Config{
		BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond,
	}, MinConnectTimeout: time.Second}
	conn := grpctest.Dial(t, grpcAddr, server.WithCredential(authCred, false), grpc.WithConnectParams(quick))
	a.admin = authv1.NewAuthServiceClient(conn)
	return a, conn
}

// startRealReplica serves a gateway that asks conn's auth service, until
// the test ends, once auth counts its revocation stream.
func startRealReplica(t *testing.T, a *realAuth, conn *grpc.ClientConn) *replica {
	t.Helper()
	g, err := gateway.New(testConfig(), gateway.Options{Auth: authv1.NewAuthServiceClient(conn)})
	if err != nil {
		t.Fatal(err)
	}
	hl, gl, ml := listen(t), listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, hl, gl, ml) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	authMetrics := &replica{metrics: a.metrics} // metric reads <metrics>/metrics
	poll(t, "auth counting the gateway's revocation stream", func() bool {
		return metric(t, authMetrics, "auth_revocation_watchers") == 1
	})
	return &replica{g: g, http: "http://" + hl.Addr().String(), ws: "ws://" + hl.Addr().String() + "/ws",
		metrics: "http://" + ml.Addr().String(), grpcAddr: gl.Addr().String()}
}

// issue opens a session of user on the real auth service.
func (a *realAuth) issue(t *testing.T, user string) *authv1.TokenPair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := a.admin.IssueSession(ctx, &authv1.IssueSessionRequest{UserId: user})
	if err != nil {
		t.Fatalf("IssueSession: %v", err)
	}
	return resp.GetTokens()
}

// call runs one trusted call with the poll deadline.
func (a *realAuth) call(t *testing.T, what string, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := fn(ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// The real auth service's revocations reach a real gateway replica: a
// logout closes the session's connection with the session-revoked code
// and leaves the user's other session connected; a revoked conversation
// access removes the member with the access_revoked left push.
func TestRevocationFromRealAuth(t *testing.T) {
	a, conn := startRealAuth(t)
	r := startRealReplica(t, a, conn)

	t.Run("session", func(t *testing.T) {
		ended, kept := a.issue(t, "alice"), a.issue(t, "alice")
		gone, stays := dial(t, r, ended.GetAccessToken()), dial(t, r, kept.GetAccessToken())
		gone.connected()
		stays.connected()
		a.call(t, "Logout", func(ctx context.Context) error {
			_, err := a.admin.Logout(ctx, &authv1.LogoutRequest{RefreshToken: ended.GetRefreshToken()})
			return err
		})
		if got := gone.closed(); got != int(protocol.CloseSessionRevoked) {
			t.Fatalf("close code %d, want %d", got, protocol.CloseSessionRevoked)
		}
		if f := stays.call(protocol.Request{Type: protocol.TypePing}); f.Error != nil {
			t.Fatalf("the other session's connection: %v", f.Error)
		}
	})

	t.Run("access", func(t *testing.T) {
		for _, user := range []string{"bob", "carol"} {
			a.call(t, "GrantAccess", func(ctx context.Context) error {
				_, err := a.admin.GrantAccess(ctx, &authv1.GrantAccessRequest{UserId: user, ConversationId: "c1"})
				return err
			})
		}
		bob, carol := dial(t, r, a.issue(t, "bob").GetAccessToken()), dial(t, r, a.issue(t, "carol").GetAccessToken())
		bob.join("conversation:c1")
		carol.join("conversation:c1")
		a.call(t, "RevokeAccess", func(ctx context.Context) error {
			_, err := a.admin.RevokeAccess(ctx, &authv1.RevokeAccessRequest{UserId: "bob", ConversationId: "c1"})
			return err
		})
		f := bob.expect("left", func(f protocol.Frame) bool { return f.Type == protocol.TypeLeft })
		if f.Room != "conversation:c1" || f.Reason != protocol.ReasonAccessRevoked {
			t.Fatalf("left push %+v, want conversation:c1 %s", f, protocol.ReasonAccessRevoked)
		}
		if f := bob.call(protocol.Request{Type: protocol.TypeJoin, Room: "conversation:c1"}); errCode(f) != protocol.ErrForbidden {
			t.Fatalf("rejoin: %+v, want forbidden", f)
		}
		publishHTTP(t, r, "conversation:c1", `"still here"`)
		carol.message("conversation:c1")
	})
}

// Revocations made on one auth replica while the gateway's replica of auth
// is down, so its revocation stream is broken, are applied once auth is
// back, by the recheck: the logged-out session's connection closes with
// the session-revoked code and the member whose access was revoked gets
// the left push, while the other session stays.
func TestRevocationsMissedWhileAuthRestartsFromRealAuth(t *testing.T) {
	redis := "AUTH_REDIS_URL=" + redistest.Start(t).URL()
	key := "AUTH_SIGNING_KEY_FILE=" + signingKey(t)
	a, conn := startRealAuth(t, redis, key)
	other, _ := startRealAuth(t, redis, key)
	r := startRealReplica(t, a, conn)
	a.call(t, "GrantAccess", func(ctx context.Context) error {
		_, err := a.admin.GrantAccess(ctx, &authv1.GrantAccessRequest{UserId: "alice", ConversationId: "c1"})
		return err
	})
	ended, kept := a.issue(t, "alice"), a.issue(t, "alice")
	gone, stays := dial(t, r, ended.GetAccessToken()), dial(t, r, kept.GetAccessToken())
	gone.connected()
	stays.join("conversation:c1")

	if err := a.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	other.call(t, "Logout", func(ctx context.Context) error {
		_, err := other.admin.Logout(ctx, &authv1.LogoutRequest{RefreshToken: ended.GetRefreshToken()})
		return err
	})
	other.call(t, "RevokeAccess", func(ctx context.Context) error {
		_, err := other.admin.RevokeAccess(ctx, &authv1.RevokeAccessRequest{UserId: "alice", ConversationId: "c1"})
		return err
	})
	a.proc.Restart(t)

	if got := gone.closed(); got != int(protocol.CloseSessionRevoked) {
		t.Fatalf("close code %d, want %d", got, protocol.CloseSessionRevoked)
	}
	f := stays.expect("left", func(f protocol.Frame) bool { return f.Type == protocol.TypeLeft })
	if f.Room != "conversation:c1" || f.Reason != protocol.ReasonAccessRevoked {
		t.Fatalf("left push %+v, want conversation:c1 %s", f, protocol.ReasonAccessRevoked)
	}
	if f := stays.call(protocol.Request{Type: protocol.TypePing}); f.Error != nil {
		t.Fatalf("the other session's connection: %v", f.Error)
	}
}

// signingKey writes an Ed25519 key as PEM PKCS #8, for auth replicas that
// must verify each other's tokens.
func signingKey(t *testing.T) string {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
