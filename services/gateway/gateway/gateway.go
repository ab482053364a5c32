package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/metrics"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
	gatewayv1 "switchboard/proto/switchboard/gateway/v1"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/connection"
	"switchboard/services/gateway/hub"
	"switchboard/services/gateway/publish"
	"switchboard/services/gateway/sse"
	"switchboard/services/gateway/telemetry"
	"switchboard/services/gateway/wsconn"
)

// shutdownGrace bounds the HTTP and gRPC servers' own shutdown after the
// drain.
const shutdownGrace = 5 * time.Second

// defaultMaxCallTime bounds a PublishService call when the Config leaves
// MaxCallTime zero.
const defaultMaxCallTime = 10 * time.Second

// Options are what New needs besides the Config.
type Options struct {
	// Auth is the auth service's client, with the credential attached.
	Auth authv1.AuthServiceClient
	// Registry receives the metrics. Nil: a fresh one.
	Registry *prometheus.Registry
	// Logger is the replica's logger. Nil: discarded.
	Logger *slog.Logger
	// Web, if set, serves GET requests for every path the API does not
	// claim: the browser client and its demo page.
	Web http.Handler
}

// Gateway is one replica.
type Gateway struct {
	// Read-only after construction.
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *telemetry.Metrics
	hub     *hub.Hub
	broker  broker.Broker
	redis   io.Closer // the Redis client; nil with the in-process broker
	auth    *authn.Authenticator
	publish *publish.Service
	upgrade wsconn.Options // its Poller is set by Serve
	web     http.Handler
	deps    connection.Deps
	streams *sse.Registry // connections on the event-stream fallback
	addrs   *addrLimit    // connections per client address
	node    string        // this replica's name, the prefix of its connection ids

	// Safe on their own.
	ready atomic.Bool
	conns sync.WaitGroup

	// Guarded by mu.
	mu       sync.Mutex
	live     map[*connection.Conn]struct{}
	draining bool
}

// New builds a replica; Serve runs it.
func New(cfg Config, opts Options) (*Gateway, error) {
	if opts.Registry == nil {
		opts.Registry = metrics.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Conn = cfg.Conn.WithDefaults()
	if cfg.MaxCallTime == 0 {
		cfg.MaxCallTime = defaultMaxCallTime
	}
	g := &Gateway{
		cfg: cfg, log: opts.Logger, reg: opts.Registry, web: opts.Web,
		metrics: telemetry.New(opts.Registry),
		live:    make(map[*connection.Conn]struct{}),
		streams: sse.NewRegistry(),
		addrs:   newAddrLimit(cfg.MaxPerAddress, cfg.TrustedProxies),
		node:    newNode(),
	}
	g.hub = hub.New(hub.Options{MaxConnections: cfg.MaxConnections, MaxPerUser: cfg.MaxPerUser, Metrics: g.metrics})
	if err := g.newBroker(); err != nil {
		return nil, err
	}
	g.hub.SetBroker(g.broker)

	auth, err := authn.New(authn.Options{
		Client: opts.Auth, CacheEntries: cfg.AuthCacheEntries, CacheTTL: cfg.AuthCacheTTL,
		CallTimeout:      cfg.Conn.RequestTimeout,
		OnSessionRevoked: g.hub.RevokeSession,
		OnAccessRevoked: func(user, conversation string) {
			g.hub.RevokeAccess(user, protocol.ConversationPrefix+conversation)
		},
		Held:    g.held,
		Metrics: g.metrics, Logger: g.log.With("component", "authn"),
	})
	if err != nil {
		g.closeBroker()
		return nil, err
	}
	g.auth = auth
	g.publish = publish.New(g.broker, server.NewCredential(cfg.ServiceCredential),
		cfg.Conn.MaxMessageBytes, cfg.Conn.RequestTimeout, g.metrics)
	g.upgrade = wsconn.Options{
		CompressionThreshold: int(cfg.CompressionThreshold), WriteTimeout: cfg.Conn.WriteTimeout,
	}
	g.deps = connection.Deps{
		Hub: g.hub, Broker: g.broker, Auth: g.auth, Metrics: g.metrics, Logger: g.log,
		IDPrefix: g.node + "-",
	}
	return g, nil
}

func (g *Gateway) newBroker() error {
	if g.cfg.RedisURL == "" {
		g.broker = broker.NewMemory(g.hub.Deliver, g.cfg.History)
		return nil
	}
	if g.cfg.RedisMode == RedisCluster {
		return g.newClusterBroker()
	}
	ropts, err := redis.ParseURL(g.cfg.RedisURL)
	if err != nil {
		return errors.New("REDIS_URL: not a redis:// URL") // the URL may hold a password
	}
	ropts.ContextTimeoutEnabled = true
	// The broker's publish pipelines share the command pool: go-redis
	// would otherwise keep up to 10 more connections for pipelines, each
	// with 256 KiB of buffers, beyond the pool's bound.
	ropts.PipelinePoolSize = -1
	c := redis.NewClient(ropts)
	g.redis = c
	g.broker = broker.NewRedis(broker.RedisOptions{
		Client: c, Prefix: g.cfg.RedisPrefix,
		Logger: g.log.With("component", "broker"), OnError: g.metrics.RedisErrors.Inc,
		OnForward: g.forwarded, History: g.cfg.History, OnResubscribed: g.hub.Resubscribed,
	}, g.hub.Deliver)
	g.broker.Want([]string{broker.NodeRoom(g.node)}, true)
	return nil
}

// newClusterBroker starts the sharded pub/sub broker over Redis Cluster.
func (g *Gateway) newClusterBroker() error {
	copts, err := redis.ParseClusterURL(g.cfg.RedisURL)
	if err != nil {
		return errors.New("REDIS_URL: not a redis:// URL of cluster nodes") // it may hold a password
	}
	copts.ContextTimeoutEnabled = true
	c := redis.NewClusterClient(copts)
	g.redis = c
	g.broker = broker.NewCluster(broker.ClusterOptions{
		Client: c, Prefix: g.cfg.RedisPrefix,
		Logger: g.log.With("component", "broker"), OnError: g.metrics.RedisErrors.Inc,
		OnForward: g.forwarded, History: g.cfg.History, OnResubscribed: g.hub.Resubscribed,
	}, g.hub.Deliver)
	g.broker.Want([]string{broker.NodeRoom(g.node)}, true)
	return nil
}

// newNode names a replica: random, so that a restarted replica's
// connection ids never match its predecessor's.
func newNode() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (g *Gateway) closeBroker() {
	g.broker.Close() // no more deliveries, hence no new repairs
	g.hub.Close()
	if g.redis != nil {
		g.redis.Close()
	}
}

// Hub is the replica's hub, for tests and tools.
func (g *Gateway) Hub() *hub.Hub { return g.hub }

// held lists the sessions and conversation accesses this replica holds
// open, for the recheck after auth's revocation stream came back.
func (g *Gateway) held() authn.Held {
	rooms := g.hub.Memberships(protocol.ConversationPrefix)
	accesses := make([]authn.Access, len(rooms))
	for i, m := range rooms {
		accesses[i] = authn.Access{User: m.User, Conversation: strings.TrimPrefix(m.Room, protocol.ConversationPrefix)}
	}
	return authn.Held{Sessions: g.hub.Sessions(), Accesses: accesses}
}

// Handler serves the replica's HTTP API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", g.serveWS)
	mux.HandleFunc("GET /sse", g.cors(g.limitAddress(g.serveSSE)))
	mux.HandleFunc("POST /sse/{id}", g.cors(g.servePost))
	mux.HandleFunc("OPTIONS /sse", g.cors(nil))
	mux.HandleFunc("OPTIONS /sse/{id}", g.cors(nil))
	mux.Handle("POST /v1/publish", g.publish)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", g.serveReady)
	if g.web != nil {
		mux.Handle("GET /", g.web)
	}
	return mux
}

func (g *Gateway) serveReady(w http.ResponseWriter, _ *http.Request) {
	if !g.ready.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

// bearerToken takes the token from the Authorization header or the legacy
// token query parameter. The request URL is never logged, since it may
// hold a token.
func bearerToken(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r, g.cfg.AllowedOrigins) { // first, as for the fallback
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	addr, ok := g.addrs.acquire(r)
	if !ok {
		refuseAddress(w)
		return
	}
	if !g.admit() {
		g.addrs.release(addr)
		http.Error(w, "the replica is shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := wsconn.Upgrade(w, r, g.upgrade)
	if err != nil {
		g.addrs.release(addr)
		g.conns.Done()
		return // Upgrade answered the client; its error may quote the request
	}
	c := connection.New(ws, &g.cfg.Conn, &g.deps)
	g.track(c, true)
	// The request's goroutine ends here: the connection runs on goroutines
	// of its own while it has something to do, and parked in between.
	c.Start(bearerToken(r), func() {
		g.track(c, false)
		g.addrs.release(addr)
		g.conns.Done()
	})
}

// admit counts a new connection unless the replica is draining.
func (g *Gateway) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return false
	}
	g.conns.Add(1)
	return true
}

func (g *Gateway) track(c *connection.Conn, open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !open {
		delete(g.live, c)
		return
	}
	g.live[c] = struct{}{}
	if g.draining { // admitted just before the drain took its snapshot
		c.Close(protocol.CloseRestarting)
	}
}

// Serve runs the replica on the listeners until ctx ends, then drains and
// stops. grpcLis may be nil to serve no gRPC, metricsLis nil to serve no
// /metrics; the public httpLis never serves it.
func (g *Gateway) Serve(ctx context.Context, httpLis, grpcLis, metricsLis net.Listener) error {
	poller, err := wsconn.NewPoller()
	if err != nil {
		return err
	}
	defer poller.Close() // after the drain: no connection is parked then
	g.upgrade.Poller = poller
	srvCtx, stopServers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServers()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- server.ServeHTTP(srvCtx, httpLis, g.httpServer(), shutdownGrace) })
	if metricsLis != nil {
		// Scraped until the replica has drained, so the drain shows.
		wg.Go(func() { errc <- server.ServeMetrics(srvCtx, metricsLis, g.reg, shutdownGrace) })
	}
	if grpcLis != nil {
		gs := server.NewGRPC(server.GRPCOptions{
			Registry: g.reg, Logger: g.log, MaxRecvBytes: int(g.cfg.Conn.MaxMessageBytes) + 4096,
			MaxCallTime: g.cfg.MaxCallTime,
		})
		gatewayv1.RegisterPublishServiceServer(gs, g.publish)
		gs.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		wg.Go(func() { errc <- gs.Serve(srvCtx, grpcLis, shutdownGrace) })
	}
	// Revocations are followed until the drain is over.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { g.auth.Watch(watchCtx) })
	g.awaitNode(ctx)
	g.ready.Store(true)

	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("server stopped: %w", err)
	}
	g.drain()
	stopWatch()
	stopServers()
	wg.Wait()
	g.closeBroker()
	g.auth.Close()
	return err
}

// httpServer is the replica's HTTP server: the shared timeouts, with the
// header timeout of the Config when it sets one.
func (g *Gateway) httpServer() *http.Server {
	srv := server.NewHTTPServer(g.Handler())
	if g.cfg.HeaderTimeout > 0 {
		srv.ReadHeaderTimeout = g.cfg.HeaderTimeout
	}
	return srv
}

// awaitNode waits a little for the subscription that forwarded requests
// arrive on; without it the replica still serves, minus forwarding.
func (g *Gateway) awaitNode(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Conn.RequestTimeout)
	defer cancel()
	if err := g.broker.Ready(ctx, broker.NodeRoom(g.node)); err != nil {
		g.log.Warn("no subscription for forwarded requests yet", "error", err)
	}
}

// drain refuses new connections and closes open ones with the restarting
// code, spread evenly over the drain period, then waits for them to end.
func (g *Gateway) drain() {
	g.ready.Store(false)
	g.mu.Lock()
	g.draining = true
	conns := make([]*connection.Conn, 0, len(g.live))
	for c := range g.live {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	g.log.Info("draining", "connections", len(conns), "period", g.cfg.Drain.String())

	start := time.Now()
	for i, c := range conns {
		due := start.Add(g.cfg.Drain * time.Duration(i) / time.Duration(len(conns)))
		if d := time.Until(due); d > time.Millisecond {
			time.Sleep(d)
		}
		c.Close(protocol.CloseRestarting)
	}
	done := make(chan struct{})
	go func() { g.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(g.cfg.Conn.WriteTimeout + closeHandshake):
		g.log.Warn("connections still open after the drain; stopping anyway")
	}
}

// closeHandshake bounds the close handshake, which wsconn limits to 5 s
// for the client's answer; with a write in flight (the write timeout) and
// a margin, it is the longest a connection takes to close once told.
const closeHandshake = 15 * time.Second
