package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"switchboard/libs/metrics"
	"switchboard/libs/server"
	"switchboard/services/auth/authority"
	"switchboard/services/auth/grpcapi"
	"switchboard/services/auth/httpapi"
	"switchboard/services/auth/password"
	"switchboard/services/auth/store"
	"switchboard/services/auth/token"
)

// Service is one running auth replica.
type Service struct {
	// GRPCAddr, HTTPAddr and MetricsAddr are where it listens (resolved
	// ports).
	GRPCAddr, HTTPAddr, MetricsAddr string
	// Authority is the running authority, for tests.
	Authority *Authority

	wg   sync.WaitGroup
	errs chan error
}

// Authority is re-exported for tests of the whole service.
type Authority = authority.Authority

// Start builds and starts a replica; it serves until ctx is cancelled.
// Listeners are open when Start returns, and health says SERVING once
// revocations are followed.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	st, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a, keys, err := newAuthority(cfg, st, log)
	if err != nil {
		closeStore()
		return nil, err
	}
	if cfg.Demo {
		if err := seedDemo(ctx, a, log); err != nil {
			closeStore()
			return nil, err
		}
	}
	warn(cfg, log)

	gl, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("AUTH_GRPC_ADDR: %w", err)
	}
	hl, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		gl.Close()
		closeStore()
		return nil, fmt.Errorf("AUTH_HTTP_ADDR: %w", err)
	}
	ml, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		gl.Close()
		hl.Close()
		closeStore()
		return nil, fmt.Errorf("AUTH_METRICS_ADDR: %w", err)
	}
	s := &Service{
		GRPCAddr: gl.Addr().String(), HTTPAddr: hl.Addr().String(), MetricsAddr: ml.Addr().String(),
		Authority: a, errs: make(chan error, 3),
	}
	s.serve(ctx, cfg, log, a, keys, listeners{gl, hl, ml}, closeStore)
	log.Info("auth listening", "grpc", s.GRPCAddr, "http", s.HTTPAddr, "metrics", s.MetricsAddr, "setup", cfg.String())
	return s, nil
}

// listeners are a replica's: gRPC, public HTTP, private metrics.
type listeners struct{ grpc, http, metrics net.Listener }

// serve starts the goroutines of a replica.
func (s *Service) serve(ctx context.Context, cfg Config, log *slog.Logger, a *authority.Authority, keys *token.Keyring, lis listeners, closeStore func()) {
	reg := metrics.NewRegistry()
	a.RegisterMetrics(reg)
	cred := server.NewCredential(cfg.Credential)
	unary, stream := cred.Require(grpcapi.Trusted)
	g := server.NewGRPC(server.GRPCOptions{
		Registry: reg, Logger: log, MaxRecvBytes: 64 << 10, MaxCallTime: cfg.MaxCallTime,
		Unary: []grpc.UnaryServerInterceptor{unary}, Stream: []grpc.StreamServerInterceptor{stream},
	})
	grpcapi.New(a, cred, log, grpcapi.Options{MaxWatchers: cfg.MaxRevocationWatchers}).Register(g)
	hs := server.NewHTTPServer(httpMux(a, cfg, log))

	// On shutdown the follower ends every watcher at once, so that the
	// gRPC drain is not held up by WatchRevocations streams.
	s.wg.Go(func() { a.Run(ctx) })
	s.wg.Go(func() {
		keys.Run(ctx, cfg.KeyCheck, func(err error) { log.Warn("signing keys not reloaded", "error", err) })
	})
	s.wg.Go(func() {
		select {
		case <-a.Ready():
			g.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		case <-ctx.Done():
		}
	})
	s.wg.Go(func() { s.errs <- g.Serve(ctx, lis.grpc, cfg.ShutdownGrace) })
	s.wg.Go(func() { s.errs <- server.ServeHTTP(ctx, lis.http, hs, cfg.ShutdownGrace) })
	s.wg.Go(func() { s.errs <- server.ServeMetrics(ctx, lis.metrics, reg, cfg.ShutdownGrace) })
	go func() {
		<-ctx.Done()
		s.wg.Wait()
		a.Close()
		closeStore()
	}()
}

// Wait blocks until the replica has stopped and returns the first serving
// error.
func (s *Service) Wait() error {
	s.wg.Wait()
	close(s.errs)
	var errs []error
	for err := range s.errs {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// httpMux is the public HTTP API; /metrics is served on the metrics
// listener only.
func httpMux(a *authority.Authority, cfg Config, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	api := httpapi.New(a, cfg.CORSOrigins, cfg.TrustedProxies, log)
	mux.Handle("/v1/", api)
	mux.Handle("/.well-known/", api)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-a.Ready():
			w.Write([]byte("ready\n"))
		default:
			http.Error(w, "not following revocations yet", http.StatusServiceUnavailable)
		}
	})
	return mux
}

func openStore(ctx context.Context, cfg Config) (store.Store, func(), error) {
	if cfg.Embedded {
		m := store.NewMemory()
		return m, func() { m.Close() }, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("AUTH_REDIS_URL/REDIS_URL: %w", err)
	}
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	r := store.NewRedis(c, cfg.RedisPrefix)
	return r, func() { r.Close(); c.Close() }, nil
}

func newAuthority(cfg Config, st store.Store, log *slog.Logger) (*authority.Authority, *token.Keyring, error) {
	keys, err := token.NewKeyring(token.KeyringOptions{
		Alg: cfg.SigningAlg, File: cfg.SigningKeyFile, Rotation: cfg.KeyRotation,
		Overlap: cfg.AccessTTL + cfg.Leeway,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("AUTH_SIGNING_KEY_FILE: %w", err)
	}
	hasher, err := password.NewHasher(cfg.Argon2, cfg.Argon2Slots)
	if err != nil {
		return nil, nil, fmt.Errorf("AUTH_ARGON2_*: %w", err)
	}
	entries := cfg.CacheEntries
	if entries == 0 {
		entries = -1
	}
	a, err := authority.New(authority.Options{
		Store: st, Keys: keys, Hasher: hasher, Issuer: cfg.Issuer, Audience: cfg.Audience,
		Leeway: cfg.Leeway, MaxToken: cfg.MaxTokenBytes, Logger: log,
		AccessTTL: cfg.AccessTTL, SessionLifetime: cfg.SessionLifetime,
		RefreshGrace: cfg.RefreshGrace, RevocationBudget: cfg.RevocationBudget,
		CacheEntries: entries, LoginPerAccount: cfg.LoginPerAccount,
		LoginPerAddress: cfg.LoginPerAddress,
	})
	if err != nil {
		return nil, nil, err
	}
	return a, keys, nil
}

// seedDemo adds the demo user and conversation (AUTH_DEMO, or the
// embedded default). A demo user already in the store is kept as it is,
// password included, so that replicas and restarts may all seed.
func seedDemo(ctx context.Context, a *authority.Authority, log *slog.Logger) error {
	_, err := a.CreateUser(ctx, DemoEmail, DemoPassword, DemoUserID)
	switch {
	case authority.KindOf(err) == authority.AlreadyExists:
		log.Info("demo user already in the store; kept as it is", "email", DemoEmail)
	case err != nil:
		return fmt.Errorf("demo user: %w", err)
	}
	if err := a.GrantAccess(ctx, DemoUserID, DemoConversation); err != nil {
		return fmt.Errorf("demo conversation: %w", err)
	}
	return nil
}

func warn(cfg Config, log *slog.Logger) {
	if cfg.UsedDevCredential {
		log.Warn("AUTH_SERVICE_CREDENTIAL is unset: trusted calls accept the documented dev credential; set one outside local runs")
	} else if cfg.Credential == "" {
		log.Warn("AUTH_SERVICE_CREDENTIAL is unset: every trusted call is refused")
	}
	if cfg.Demo && !cfg.Embedded {
		log.Warn("AUTH_DEMO is set: Redis holds the demo user with its documented password; never set it on a shared store")
	}
	if cfg.SigningKeyFile == "" && !cfg.Embedded {
		log.Warn("AUTH_SIGNING_KEY_FILE is unset with Redis: other replicas will refuse this one's tokens")
	}
}
