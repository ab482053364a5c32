package app_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/libs/redistest"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/app"
	"switchboard/services/auth/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testCredential = "test-credential"

// logBuffer collects a replica's log lines; safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// replica is one running auth service with a client.
type replica struct {
	svc    *app.Service
	logs   *logBuffer
	seen   *secrets                 // what the clients sent and received; nil in benchmarks
	client authv1.AuthServiceClient // no credential
	admin  authv1.AuthServiceClient // with the service credential
}

// env returns the settings of a test replica: port 0, cheap argon2.
func env(extra map[string]string) map[string]string {
	m := map[string]string{
		"AUTH_GRPC_ADDR": "127.0.0.1:0", "AUTH_HTTP_ADDR": "127.0.0.1:0", "AUTH_METRICS_ADDR": "127.0.0.1:0",
		"AUTH_ARGON2_TIME": "1", "AUTH_ARGON2_MEMORY": "64KiB", "AUTH_ARGON2_THREADS": "1",
		"AUTH_SERVICE_CREDENTIAL": testCredential, "AUTH_LOG_LEVEL": "debug",
		"AUTH_CORS_ORIGINS": "https://app.example.com",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// start runs a replica until the test ends, and checks at cleanup that its
// logs hold no part of any secret in seen. Every token and password its
// clients send or receive is added to seen (a fresh one when nil), refused
// ones included; benchmarks that pass nil record nothing.
func start(t testing.TB, vars map[string]string, seen *secrets) *replica {
	t.Helper()
	cfg, err := app.Load(config.New(config.Map(vars)))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := app.Start(ctx, cfg, logging.New(logs, "auth", cfg.LogLevel))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, bench := t.(*testing.B); seen == nil && !bench {
		seen = &secrets{}
	}
	r := &replica{svc: svc, logs: logs, seen: seen}
	r.client = authv1.NewAuthServiceClient(dial(t, svc.GRPCAddr, seen.recorder()...))
	r.admin = authv1.NewAuthServiceClient(dial(t, svc.GRPCAddr,
		append(seen.recorder(), server.WithCredential(testCredential, false))...))
	t.Cleanup(func() {
		cancel()
		if err := svc.Wait(); err != nil {
			t.Errorf("replica stopped with %v", err)
		}
		if line := seen.leak(logs.String()); line != 0 {
			t.Errorf("log line %d holds part of a token or password the test sent or received", line)
		}
	})
	waitServing(t, svc.GRPCAddr)
	return r
}

func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func waitServing(t testing.TB, addr string) {
	t.Helper()
	eventually(t, "replica serving", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return server.CheckGRPC(ctx, addr) == nil
	})
}

// eventually polls cond until it holds or 5 seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func code(err error) codes.Code { return status.Code(err) }

// keyFile writes one shared signing key for replicas of one test.
func keyFile(t testing.TB) string {
	t.Helper()
	k, err := token.GenerateKey(token.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := k.MarshalPEM()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// login logs the demo user in on an embedded replica.
func login(t testing.TB, r *replica, seen *secrets) *authv1.TokenPair {
	t.Helper()
	resp, err := r.client.Login(ctxT(t), &authv1.LoginRequest{Email: app.DemoEmail, Password: app.DemoPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return seen.add(resp.GetTokens())
}

func serverCred(secret string) grpc.DialOption { return server.WithCredential(secret, false) }

// backend is a store configuration to run a test against.
type backend struct {
	name string
	vars map[string]string
}

// backends returns the memory store and a fresh Redis.
func backends(t testing.TB) []backend {
	t.Helper()
	srv := redistest.Start(t)
	return []backend{
		{"memory", nil},
		{"redis", map[string]string{"AUTH_REDIS_URL": srv.URL(), "AUTH_SIGNING_KEY_FILE": keyFile(t)}},
	}
}

// issue opens a session for userID through the trusted call.
func issue(t testing.TB, r *replica, seen *secrets, userID string) *authv1.TokenPair {
	t.Helper()
	resp, err := r.admin.IssueSession(ctxT(t), &authv1.IssueSessionRequest{UserId: userID})
	if err != nil {
		t.Fatalf("IssueSession: %v", err)
	}
	return seen.add(resp.GetTokens())
}
