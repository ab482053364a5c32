package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/app"
	"switchboard/services/auth/token"
)

func main() { server.Main(run) }

func run(ctx context.Context, args []string) error {
	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "", "serve":
		return serve(ctx)
	case "healthcheck":
		return healthcheck(ctx)
	case "createuser":
		return createUser(ctx, args, os.Stdin, os.Stdout)
	case "genkey":
		return genKey(args, os.Stdout)
	}
	return fmt.Errorf("unknown command %q: want serve, healthcheck, createuser or genkey", cmd)
}

func serve(ctx context.Context) error {
	cfg, err := app.Load(config.FromEnv())
	if err != nil {
		return err
	}
	log := logging.New(os.Stderr, "auth", cfg.LogLevel)
	s, err := app.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return s.Wait()
}

// localAddr turns a listen address into one to dial from the same host.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func healthcheck(ctx context.Context) error {
	env := config.FromEnv()
	addr := env.String("AUTH_GRPC_ADDR", "127.0.0.1:7200")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return server.CheckGRPC(ctx, localAddr(addr))
}

func createUser(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("createuser", flag.ContinueOnError)
	email := fs.String("email", "", "the user's email (required)")
	id := fs.String("id", "", "the user id; chosen by the service when empty")
	env := config.FromEnv()
	addr := fs.String("addr", localAddr(env.String("AUTH_GRPC_ADDR", "127.0.0.1:7200")), "auth gRPC address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *email == "" {
		return errors.New("createuser: -email is required")
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("createuser: read password: %w", err)
	}
	cred := env.Secret("AUTH_SERVICE_CREDENTIAL")
	if cred == "" {
		cred = app.DevCredential
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		server.WithCredential(cred, false))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := authv1.NewAuthServiceClient(conn).CreateUser(ctx, &authv1.CreateUserRequest{
		Email: *email, Password: strings.TrimRight(line, "\r\n"), UserId: *id,
	})
	if err != nil {
		return fmt.Errorf("createuser: %w", err)
	}
	fmt.Fprintln(stdout, resp.GetUserId())
	return nil
}

func genKey(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("genkey", flag.ContinueOnError)
	alg := fs.String("alg", token.EdDSA, "EdDSA or ES256")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := token.GenerateKey(*alg)
	if err != nil {
		return err
	}
	pem, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	_, err = stdout.Write(pem)
	return err
}
