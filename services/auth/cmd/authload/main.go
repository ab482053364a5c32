// Command authload drives a bounded load of Validate (warm: the same few
// tokens again and again) or Refresh (each worker rotates its own session)
// calls at a running auth service on loopback, and prints one JSON report:
// calls a second, latency percentiles and errors by status code.
//
//	make build && deploy/run-local.sh &
//	go run ./services/auth/cmd/authload -op validate -concurrency 16 -duration 10s
//	go run ./services/auth/cmd/authload -op refresh -credential-file tmp/run/credential
//
// Sessions are opened with IssueSession when a service credential is given
// (users load-0, load-1, ...), else by logging in as -email, which the
// login limits allow only a few times a minute: refresh needs the
// credential. It refuses a target that is not on a loopback address.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchboard/libs/grpcload"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// params are the command's flags.
type params struct {
	target         string
	op             string
	sessions       int
	credentialFile string
	email          string
	password       string
	load           grpcload.Options
}

func main() {
	var p params
	flag.StringVar(&p.target, "target", "127.0.0.1:7200", "auth gRPC address (loopback only)")
	flag.StringVar(&p.op, "op", "validate", "validate or refresh")
	flag.IntVar(&p.sessions, "sessions", 1, "validate: distinct tokens (1-1000)")
	flag.StringVar(&p.credentialFile, "credential-file", "", "file holding AUTH_SERVICE_CREDENTIAL (make run writes tmp/run/credential)")
	flag.StringVar(&p.email, "email", "agent@example.com", "without a credential: the account to log in as")
	flag.StringVar(&p.password, "password", "switchboard-demo", "without a credential: its password")
	p.load.Flags(flag.CommandLine)
	flag.Parse()
	grpcload.Main("authload", p.check, func(ctx context.Context) (any, error) { return run(ctx, p) })
}

func (p *params) check() error {
	if err := grpcload.CheckLoopback(p.target); err != nil {
		return err
	}
	switch {
	case p.op != "validate" && p.op != "refresh":
		return fmt.Errorf("-op %q is not validate or refresh", p.op)
	case p.sessions < 1 || p.sessions > 1000:
		return fmt.Errorf("-sessions %d is not in [1, 1000]", p.sessions)
	case p.op == "refresh" && p.credentialFile == "":
		return errors.New("-op refresh opens a session per worker and needs -credential-file")
	}
	p.load.Name = "auth " + p.op
	p.load.Target = p.target
	return p.load.Check()
}

// run dials the target, opens the sessions and runs the load.
func run(ctx context.Context, p params) (*grpcload.Report, error) {
	conn, err := grpc.NewClient(p.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := authv1.NewAuthServiceClient(conn)
	var admin authv1.AuthServiceClient
	if p.credentialFile != "" {
		b, err := os.ReadFile(p.credentialFile)
		if err != nil {
			return nil, fmt.Errorf("credential: %w", err)
		}
		cred := server.WithCredential(strings.TrimSpace(string(b)), false)
		adminConn, err := grpc.NewClient(p.target, grpc.WithTransportCredentials(insecure.NewCredentials()), cred)
		if err != nil {
			return nil, err
		}
		defer adminConn.Close()
		admin = authv1.NewAuthServiceClient(adminConn)
	}
	n := p.sessions
	if p.op == "refresh" {
		n = p.load.Concurrency
	}
	pairs, err := openSessions(ctx, client, admin, p, n)
	if err != nil {
		return nil, fmt.Errorf("open sessions: %w", err)
	}
	if p.op == "refresh" {
		return grpcload.Run(ctx, p.load, refreshOp(client, pairs))
	}
	return grpcload.Run(ctx, p.load, validateOp(client, pairs))
}

// openSessions opens n sessions through IssueSession, or by logging in
// when admin is nil.
func openSessions(ctx context.Context, client, admin authv1.AuthServiceClient, p params, n int) ([]*authv1.TokenPair, error) {
	pairs := make([]*authv1.TokenPair, n)
	for i := range pairs {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		if admin != nil {
			var r *authv1.IssueSessionResponse
			r, err = admin.IssueSession(callCtx, &authv1.IssueSessionRequest{UserId: fmt.Sprintf("load-%d", i)})
			pairs[i] = r.GetTokens()
		} else {
			var r *authv1.LoginResponse
			r, err = client.Login(callCtx, &authv1.LoginRequest{Email: p.email, Password: p.password})
			pairs[i] = r.GetTokens()
		}
		cancel()
		if err != nil {
			return nil, err
		}
	}
	return pairs, nil
}

// validateOp validates the sessions' access tokens in turn.
func validateOp(c authv1.AuthServiceClient, pairs []*authv1.TokenPair) grpcload.Op {
	reqs := make([]*authv1.ValidateRequest, len(pairs))
	for i, p := range pairs {
		reqs[i] = &authv1.ValidateRequest{AccessToken: p.GetAccessToken()}
	}
	return func(ctx context.Context, w int, seq int64) error {
		_, err := c.Validate(ctx, reqs[(int64(w)+seq)%int64(len(reqs))])
		return err
	}
}

// refreshOp rotates worker w's session: each call presents the refresh
// token the previous call returned.
func refreshOp(c authv1.AuthServiceClient, pairs []*authv1.TokenPair) grpcload.Op {
	current := make([]string, len(pairs))
	for i, p := range pairs {
		current[i] = p.GetRefreshToken()
	}
	return func(ctx context.Context, w int, _ int64) error {
		r, err := c.Refresh(ctx, &authv1.RefreshRequest{RefreshToken: current[w]})
		if err != nil {
			return err
		}
		current[w] = r.GetTokens().GetRefreshToken()
		return nil
	}
}
