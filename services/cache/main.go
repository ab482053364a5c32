package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/libs/server"
)

func main() { server.Main(run) }

// run starts the service, or runs the subcommand named by args.
func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		if args[0] != "healthcheck" {
			return fmt.Errorf("unknown subcommand %q: the only one is healthcheck", args[0])
		}
		return healthcheck(ctx)
	}

	cfg, err := loadConfig(config.FromEnv())
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := logging.New(os.Stderr, "cache", cfg.LogLevel)
	svc, err := newService(cfg, log, nil)
	if err != nil {
		return err
	}
	grpcLis, httpLis, err := listen(cfg)
	if err != nil {
		svc.caches.close()
		return err
	}
	log.Info("cache listening", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String(),
		"caches", svc.caches.names())
	err = svc.serve(ctx, grpcLis, httpLis)
	log.Info("cache stopped", "err", err)
	return err
}

func listen(cfg Config) (grpcLis, httpLis net.Listener, err error) {
	grpcLis, err = net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("CACHE_GRPC_ADDR: %w", err)
	}
	httpLis, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return nil, nil, fmt.Errorf("CACHE_HTTP_ADDR: %w", err)
	}
	return grpcLis, httpLis, nil
}

// healthcheck asks the gRPC health service of the replica configured in
// this environment whether it serves; a container's health probe runs it.
func healthcheck(ctx context.Context) error {
	env := config.FromEnv()
	addr := env.String("CACHE_GRPC_ADDR", "127.0.0.1:7300")
	if err := env.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return server.CheckGRPC(ctx, dialable(addr))
}

// dialable turns a listen address into one to dial: a wildcard host
// becomes loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
