package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/libs/server"
	"switchboard/services/auth/app"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const credential = "load-test-credential"

// startAuth runs an embedded auth replica until the test ends and returns
// its gRPC address and a file holding its credential.
func startAuth(t *testing.T) (string, string) {
	t.Helper()
	cfg, err := app.Load(config.New(config.Map(map[string]string{
		"AUTH_GRPC_ADDR": "127.0.0.1:0", "AUTH_HTTP_ADDR": "127.0.0.1:0", "AUTH_METRICS_ADDR": "127.0.0.1:0",
		"AUTH_ARGON2_TIME": "1", "AUTH_ARGON2_MEMORY": "64KiB", "AUTH_ARGON2_THREADS": "1",
		"AUTH_SERVICE_CREDENTIAL": credential,
	})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := app.Start(ctx, cfg, logging.Discard())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := svc.Wait(); err != nil {
			t.Errorf("auth stopped with %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for server.CheckGRPC(ctx, svc.GRPCAddr) != nil {
		if time.Now().After(deadline) {
			t.Fatal("auth not serving within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	file := filepath.Join(t.TempDir(), "credential")
	if err := os.WriteFile(file, []byte(credential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return svc.GRPCAddr, file
}

// TestRun: every op, with and without the credential, makes the calls it
// was asked for without an error.
func TestRun(t *testing.T) {
	addr, credFile := startAuth(t)
	for _, tc := range []struct {
		name, op, cred string
		sessions       int
	}{
		{"validate by login", "validate", "", 1},
		{"validate issued sessions", "validate", credFile, 3},
		{"refresh", "refresh", credFile, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := params{target: addr, op: tc.op, sessions: tc.sessions, credentialFile: tc.cred,
				email: app.DemoEmail, password: app.DemoPassword}
			p.load.Concurrency, p.load.Requests, p.load.Duration = 4, 60, time.Minute
			if err := p.check(); err != nil {
				t.Fatal(err)
			}
			rep, err := run(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Requests != 60 || rep.OK != 60 || len(rep.Errors) != 0 {
				t.Fatalf("report = %+v", rep)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	good := func() params {
		p := params{target: "127.0.0.1:7200", op: "validate", sessions: 1}
		p.load.Concurrency, p.load.Requests, p.load.Duration = 1, 1, time.Second
		return p
	}
	for _, tc := range []struct {
		name string
		edit func(*params)
	}{
		{"remote target", func(p *params) { p.target = "203.0.113.5:7200" }},
		{"named host", func(p *params) { p.target = "auth.internal:7200" }},
		{"unknown op", func(p *params) { p.op = "login" }},
		{"refresh without credential", func(p *params) { p.op = "refresh" }},
		{"no sessions", func(p *params) { p.sessions = 0 }},
		{"too many requests", func(p *params) { p.load.Requests = 1 << 40 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.edit(&p)
			if err := p.check(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	p := good()
	if err := p.check(); err != nil {
		t.Fatalf("good params: %v", err)
	}
}
