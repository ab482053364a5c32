package gateway

import (
	"time"

	"switchboard/libs/config"
	"switchboard/libs/server"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/connection"
)

// Config is every setting of a replica. Each field names its variable and
// default.
type Config struct {
	// HTTPAddr serves /ws, /v1/publish and the probes.
	// GATEWAY_HTTP_ADDR, 127.0.0.1:7100.
	HTTPAddr string
	// GRPCAddr serves PublishService. GATEWAY_GRPC_ADDR, 127.0.0.1:7101.
	GRPCAddr string
	// MetricsAddr serves /metrics and /healthz, apart from the public
	// HTTPAddr; keep it off the internet. GATEWAY_METRICS_ADDR,
	// 127.0.0.1:7102.
	MetricsAddr string
	// AuthAddr is the auth service. AUTH_ADDR, 127.0.0.1:7200.
	AuthAddr string
	// AuthCredential is sent to auth for its trusted calls
	// (WatchRevocations). GATEWAY_AUTH_CREDENTIAL; empty: the
	// revocation stream is refused and the cache stays off.
	AuthCredential string
	// RedisURL selects the Redis broker; empty: the in-process broker of
	// a single replica. REDIS_URL. In cluster mode it names one or more
	// seed nodes: redis://[user:password@]host:port?addr=host2:port&...
	RedisURL string
	// RedisMode is "single" (one Redis, pub/sub) or "cluster" (Redis
	// Cluster 7 or later, sharded pub/sub); cluster needs REDIS_URL.
	// GATEWAY_REDIS_MODE, single.
	RedisMode string
	// RedisPrefix starts every Redis key and channel. GATEWAY_REDIS_PREFIX,
	// "sb:".
	RedisPrefix string
	// ServiceCredential guards the publish API. GATEWAY_SERVICE_CREDENTIAL;
	// empty: every publish is refused.
	ServiceCredential string
	// AllowedOrigins are Origin host patterns (path.Match syntax) allowed
	// besides the request's own host. GATEWAY_ALLOWED_ORIGINS, none.
	AllowedOrigins []string
	// CompressionThreshold is the smallest message compressed with
	// permessage-deflate; 0 turns compression off.
	// GATEWAY_COMPRESSION_THRESHOLD, 2 KiB.
	CompressionThreshold int64
	// MaxConnections caps this replica's connections.
	// GATEWAY_MAX_CONNECTIONS, 100000.
	MaxConnections int
	// MaxPerUser caps one user's connections on this replica.
	// GATEWAY_MAX_CONNECTIONS_PER_USER, 20.
	MaxPerUser int
	// MaxPerAddress caps the connections, WebSocket and event-stream, of
	// one client address on this replica; past it an upgrade or a stream
	// is refused with HTTP 429. GATEWAY_MAX_CONNECTIONS_PER_ADDRESS, 100;
	// 0: no limit.
	MaxPerAddress int
	// TrustedProxies are the networks of reverse proxies (the load
	// balancer) whose X-Forwarded-For, read from the right, names the
	// client address that MaxPerAddress counts. GATEWAY_TRUSTED_PROXIES,
	// CIDRs; empty: none, the peer is the client.
	TrustedProxies server.TrustedProxies
	// HeaderTimeout bounds the reading of a request's headers, so a
	// handshake that never finishes holds its socket no longer.
	// GATEWAY_HEADER_TIMEOUT, 5s; 0: 5s.
	HeaderTimeout time.Duration
	// MaxCallTime bounds the work of one PublishService call whose client
	// sets no sooner deadline; such a call is answered DEADLINE_EXCEEDED.
	// GATEWAY_MAX_CALL_TIME, 10s; 0: 10s.
	MaxCallTime time.Duration
	// Drain spreads the closing of connections at shutdown.
	// GATEWAY_DRAIN, 10s.
	Drain time.Duration
	// AuthCacheEntries and AuthCacheTTL bound the validation cache.
	// GATEWAY_AUTH_CACHE_ENTRIES, 100000; GATEWAY_AUTH_CACHE_TTL, 1m.
	AuthCacheEntries int
	AuthCacheTTL     time.Duration
	// Conn holds the per-connection limits and timings:
	// GATEWAY_MAX_MESSAGE_BYTES 64KiB, GATEWAY_QUEUE_BYTES 1MiB,
	// GATEWAY_WRITE_TIMEOUT 10s, GATEWAY_PING_INTERVAL 25s,
	// GATEWAY_PING_TIMEOUT 8s, GATEWAY_AUTH_DEADLINE 10s,
	// GATEWAY_EXPIRY_GRACE 25s, GATEWAY_REQUEST_TIMEOUT 5s,
	// GATEWAY_RATE 50 (frames/s), GATEWAY_BURST 100,
	// GATEWAY_MAX_ROOMS 100.
	Conn connection.Config
	// WebAuthURL is the auth service's HTTP base as browsers reach it; when
	// set, the gateway serves the browser client and the demo page at "/".
	// GATEWAY_WEB_AUTH_URL, empty: no page.
	WebAuthURL string
	// WebGatewayURL is the gateway's HTTP base as browsers reach it.
	// GATEWAY_WEB_GATEWAY_URL, empty: the page's own origin.
	WebGatewayURL string
	// DebugAddr serves net/http/pprof when set; keep it on loopback.
	// GATEWAY_DEBUG_ADDR, empty: off.
	DebugAddr string
	// History bounds each room's history in the broker, by room kind, and
	// the idempotency window: GATEWAY_HISTORY_CONVERSATION_SIZE 1000,
	// GATEWAY_HISTORY_CONVERSATION_TTL 24h, GATEWAY_HISTORY_USER_SIZE 100,
	// GATEWAY_HISTORY_USER_TTL 1h, GATEWAY_IDEMPOTENCY_WINDOW 5m. A room
	// idle for its TTL loses its history and starts a new epoch.
	History broker.HistoryOptions
	// LogLevel is debug, info, warn or error. GATEWAY_LOG_LEVEL, info.
	LogLevel string
}

// FromEnv reads the configuration; the error names every bad variable.
func FromEnv(env *config.Env) (Config, error) {
	c := Config{
		HTTPAddr:             env.String("GATEWAY_HTTP_ADDR", "127.0.0.1:7100"),
		GRPCAddr:             env.String("GATEWAY_GRPC_ADDR", "127.0.0.1:7101"),
		MetricsAddr:          env.Addr("GATEWAY_METRICS_ADDR", "127.0.0.1:7102"),
		AuthAddr:             env.String("AUTH_ADDR", "127.0.0.1:7200"),
		AuthCredential:       env.Secret("GATEWAY_AUTH_CREDENTIAL"),
		RedisURL:             env.Secret("REDIS_URL"),
		RedisPrefix:          env.String("GATEWAY_REDIS_PREFIX", "sb:"),
		RedisMode:            env.OneOf("GATEWAY_REDIS_MODE", RedisSingle, RedisSingle, RedisCluster),
		ServiceCredential:    env.Secret("GATEWAY_SERVICE_CREDENTIAL"),
		AllowedOrigins:       env.List("GATEWAY_ALLOWED_ORIGINS", nil),
		CompressionThreshold: env.Bytes("GATEWAY_COMPRESSION_THRESHOLD", 2<<10, 0, 1<<20),
		MaxConnections:       env.Int("GATEWAY_MAX_CONNECTIONS", 100_000, 1, 10_000_000),
		MaxPerUser:           env.Int("GATEWAY_MAX_CONNECTIONS_PER_USER", 20, 1, 100_000),
		MaxPerAddress:        env.Int("GATEWAY_MAX_CONNECTIONS_PER_ADDRESS", 100, 0, 10_000_000),
		HeaderTimeout:        env.Duration("GATEWAY_HEADER_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Minute),
		MaxCallTime:          env.Duration("GATEWAY_MAX_CALL_TIME", defaultMaxCallTime, 100*time.Millisecond, 5*time.Minute),
		Drain:                env.Duration("GATEWAY_DRAIN", 10*time.Second, 0, 10*time.Minute),
		AuthCacheEntries:     env.Int("GATEWAY_AUTH_CACHE_ENTRIES", 100_000, 1, 10_000_000),
		AuthCacheTTL:         env.Duration("GATEWAY_AUTH_CACHE_TTL", time.Minute, time.Second, time.Hour),
		DebugAddr:            env.String("GATEWAY_DEBUG_ADDR", ""),
		WebAuthURL:           env.String("GATEWAY_WEB_AUTH_URL", ""),
		WebGatewayURL:        env.String("GATEWAY_WEB_GATEWAY_URL", ""),
		LogLevel:             env.OneOf("GATEWAY_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		History: broker.HistoryOptions{
			Conversation: broker.Retention{
				Size: env.Int("GATEWAY_HISTORY_CONVERSATION_SIZE", 1000, 1, 1_000_000),
				TTL:  env.Duration("GATEWAY_HISTORY_CONVERSATION_TTL", 24*time.Hour, time.Second, 30*24*time.Hour),
			},
			User: broker.Retention{
				Size: env.Int("GATEWAY_HISTORY_USER_SIZE", 100, 1, 1_000_000),
				TTL:  env.Duration("GATEWAY_HISTORY_USER_TTL", time.Hour, time.Second, 30*24*time.Hour),
			},
			IdempotencyWindow: env.Duration("GATEWAY_IDEMPOTENCY_WINDOW", 5*time.Minute, time.Second, 24*time.Hour),
		},
		Conn: connection.Config{
			MaxMessageBytes: env.Bytes("GATEWAY_MAX_MESSAGE_BYTES", 64<<10, 256, 16<<20),
			QueueBytes:      int(env.Bytes("GATEWAY_QUEUE_BYTES", 1<<20, 4<<10, 1<<30)),
			WriteTimeout:    env.Duration("GATEWAY_WRITE_TIMEOUT", 10*time.Second, 100*time.Millisecond, 5*time.Minute),
			PingInterval:    env.Duration("GATEWAY_PING_INTERVAL", 25*time.Second, 100*time.Millisecond, time.Hour),
			PingTimeout:     env.Duration("GATEWAY_PING_TIMEOUT", 8*time.Second, 100*time.Millisecond, 10*time.Minute),
			AuthDeadline:    env.Duration("GATEWAY_AUTH_DEADLINE", 10*time.Second, 100*time.Millisecond, 5*time.Minute),
			ExpiryGrace:     env.Duration("GATEWAY_EXPIRY_GRACE", 25*time.Second, time.Millisecond, time.Hour),
			RequestTimeout:  env.Duration("GATEWAY_REQUEST_TIMEOUT", 5*time.Second, 10*time.Millisecond, 5*time.Minute),
			Rate:            env.Float("GATEWAY_RATE", 50, 0.1, 1e6),
			Burst:           env.Int("GATEWAY_BURST", 100, 1, 1_000_000),
			MaxRooms:        env.Int("GATEWAY_MAX_ROOMS", 100, 1, 100_000),
		},
	}
	proxies, err := server.ParseTrustedProxies(env.List("GATEWAY_TRUSTED_PROXIES", nil))
	if err != nil {
		env.Fail("GATEWAY_TRUSTED_PROXIES", "%v", err)
	}
	c.TrustedProxies = proxies
	if int64(c.Conn.QueueBytes) < 2*c.Conn.MaxMessageBytes {
		env.Fail("GATEWAY_QUEUE_BYTES", "%d is less than twice GATEWAY_MAX_MESSAGE_BYTES (%d): one message could fill a queue",
			c.Conn.QueueBytes, c.Conn.MaxMessageBytes)
	}
	if c.RedisMode == RedisCluster && c.RedisURL == "" {
		env.Fail("GATEWAY_REDIS_MODE", "cluster needs REDIS_URL naming at least one node of the cluster")
	}
	return c, env.Err()
}

// The values of GATEWAY_REDIS_MODE.
const (
	RedisSingle  = "single"
	RedisCluster = "cluster"
)
