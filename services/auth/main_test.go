package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/services/auth/app"
	"switchboard/services/auth/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGenKey(t *testing.T) {
	for _, alg := range token.Algorithms {
		var out bytes.Buffer
		if err := genKey([]string{"-alg", alg}, &out); err != nil {
			t.Fatal(err)
		}
		keys, err := token.ParsePEM(out.Bytes())
		if err != nil || len(keys) != 1 || keys[0].Alg != alg {
			t.Fatalf("genkey %s: %v", alg, err)
		}
	}
	if err := genKey([]string{"-alg", "HS256"}, &bytes.Buffer{}); err == nil {
		t.Fatal("genkey accepted HS256")
	}
}

func TestUnknownCommand(t *testing.T) {
	if err := run(context.Background(), []string{"frobnicate"}); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("run(frobnicate) = %v", err)
	}
}

// createuser and healthcheck against a running replica.
func TestCreateUserAndHealthcheck(t *testing.T) {
	cfg, err := app.Load(config.New(config.Map(map[string]string{
		"AUTH_GRPC_ADDR": "127.0.0.1:0", "AUTH_HTTP_ADDR": "127.0.0.1:0", "AUTH_METRICS_ADDR": "127.0.0.1:0",
		"AUTH_ARGON2_TIME": "1", "AUTH_ARGON2_MEMORY": "64KiB", "AUTH_ARGON2_THREADS": "1",
	})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svcCtx, stop := context.WithCancel(ctx)
	svc, err := app.Start(svcCtx, cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); svc.Wait() }()
	t.Setenv("AUTH_GRPC_ADDR", svc.GRPCAddr)

	deadline := time.Now().Add(5 * time.Second)
	for healthcheck(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("healthcheck never passed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out bytes.Buffer
	err = createUser(ctx, []string{"-email", "cli@example.com", "-id", "cli-user"}, strings.NewReader("a-long-password\n"), &out)
	if err != nil || strings.TrimSpace(out.String()) != "cli-user" {
		t.Fatalf("createuser = %q, %v", out.String(), err)
	}
	if _, err := svc.Authority.Login(ctx, "cli@example.com", "a-long-password", ""); err != nil {
		t.Fatalf("login as the created user: %v", err)
	}
	if err := createUser(ctx, []string{"-email", "cli@example.com"}, strings.NewReader("a-long-password\n"), &out); err == nil {
		t.Fatal("duplicate createuser succeeded")
	}
	if err := createUser(ctx, nil, strings.NewReader(""), &out); err == nil {
		t.Fatal("createuser without -email succeeded")
	}
}
