// Command switchboard-gateway is the WebSocket gateway of Switchboard: it
// authenticates clients through the auth service, keeps their rooms and
// fans messages out across replicas through Redis pub/sub.
//
// Usage:
//
//	switchboard-gateway              serve (configuration from the environment)
//	switchboard-gateway healthcheck  exit 0 when the local replica is ready
//
// The variables are listed on gateway.Config.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/gateway"
	"switchboard/services/gateway/web"
)

func main() { server.Main(run) }

func run(ctx context.Context, args []string) error {
	cfg, err := gateway.FromEnv(config.FromEnv())
	if err != nil {
		return err
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return server.CheckHTTP(ctx, "http://"+cfg.HTTPAddr+"/readyz")
	}
	if len(args) > 0 {
		return fmt.Errorf("unknown subcommand %q (want none or healthcheck)", args[0])
	}
	return serve(ctx, cfg)
}

func serve(ctx context.Context, cfg gateway.Config) error {
	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("GATEWAY_LOG_LEVEL: %w", err)
	}
	log := logging.New(os.Stderr, "gateway", level)

	conn, err := grpc.NewClient(cfg.AuthAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`),
		server.WithCredential(cfg.AuthCredential, false))
	if err != nil {
		return fmt.Errorf("AUTH_ADDR: %w", err)
	}
	defer conn.Close()
	opts := gateway.Options{Auth: authv1.NewAuthServiceClient(conn), Logger: log}
	if cfg.WebAuthURL != "" {
		h, err := web.New(web.Options{AuthURL: cfg.WebAuthURL, GatewayURL: cfg.WebGatewayURL})
		if err != nil {
			return fmt.Errorf("GATEWAY_WEB_AUTH_URL or GATEWAY_WEB_GATEWAY_URL: %w", err)
		}
		opts.Web = h
	}
	g, err := gateway.New(cfg, opts)
	if err != nil {
		return err
	}

	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("GATEWAY_HTTP_ADDR: %w", err)
	}
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		httpLis.Close()
		return fmt.Errorf("GATEWAY_GRPC_ADDR: %w", err)
	}
	metricsLis, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		httpLis.Close()
		grpcLis.Close()
		return fmt.Errorf("GATEWAY_METRICS_ADDR: %w", err)
	}
	if cfg.DebugAddr != "" {
		go http.ListenAndServe(cfg.DebugAddr, nil) // net/http/pprof's handlers
	}
	broker := "in-process"
	if cfg.RedisURL != "" {
		broker = "redis " + cfg.RedisMode
	}
	if cfg.ServiceCredential == "" {
		log.Warn("GATEWAY_SERVICE_CREDENTIAL is empty: every publish from a backend is refused")
	}
	if cfg.AuthCredential == "" {
		log.Warn("GATEWAY_AUTH_CREDENTIAL is empty: auth refuses the revocation stream, so validations are not cached")
	}
	log.Info("gateway listening", "http", httpLis.Addr().String(), "grpc", grpcLis.Addr().String(),
		"metrics", metricsLis.Addr().String(), "auth", cfg.AuthAddr, "broker", broker)
	return g.Serve(ctx, httpLis, grpcLis, metricsLis)
}
