package app

import (
	"fmt"
	"log/slog"
	"time"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/libs/server"
	"switchboard/services/auth/grpcapi"
	"switchboard/services/auth/password"
	"switchboard/services/auth/token"
)

// The demo account and dev credential, documented in the README. The
// embedded default has both; with a Redis URL the demo account is added
// only under AUTH_DEMO (make run sets it), and the dev credential never
// applies.
const (
	DemoEmail        = "agent@example.com"
	DemoPassword     = "switchboard-demo"
	DemoUserID       = "agent"
	DemoConversation = "demo"
	DevCredential    = "switchboard-dev-credential"
)

// Config is every setting of the service. Each field names its variable
// and default.
type Config struct {
	GRPCAddr string // AUTH_GRPC_ADDR, 127.0.0.1:7200
	HTTPAddr string // AUTH_HTTP_ADDR, 127.0.0.1:7201 (token, logout, JWKS, probes)
	// MetricsAddr serves /metrics and /healthz, apart from the HTTPAddr
	// that browsers reach; keep it off the internet. AUTH_METRICS_ADDR,
	// 127.0.0.1:7202.
	MetricsAddr string
	// RedisURL is AUTH_REDIS_URL, else REDIS_URL; "" = the in-memory store
	// of the embedded default.
	RedisURL    string
	RedisPrefix string // AUTH_REDIS_PREFIX, "auth:"

	Issuer   string // AUTH_ISSUER, switchboard-auth
	Audience string // AUTH_AUDIENCE, switchboard

	AccessTTL        time.Duration // AUTH_ACCESS_TTL, 15m, in [1m, 24h]
	SessionLifetime  time.Duration // AUTH_SESSION_LIFETIME, 720h, in [1h, 8760h]
	RefreshGrace     time.Duration // AUTH_REFRESH_GRACE, 10s, in [0, 1m]
	Leeway           time.Duration // AUTH_LEEWAY, 30s, in [0, 60s]
	MaxTokenBytes    int           // AUTH_MAX_TOKEN_BYTES, 4096, in [1024, 16384]
	RevocationBudget time.Duration // AUTH_REVOCATION_BUDGET, 5s, in [100ms, 1m]
	CacheEntries     int           // AUTH_CACHE_ENTRIES, 100000; 0 = no cache

	// SigningKeyFile is AUTH_SIGNING_KEY_FILE: PEM PKCS #8 keys, the first
	// signs, re-read every KeyCheck. "" = keys generated at start and
	// rotated every KeyRotation; fine for one replica, but replicas sharing
	// Redis must share a key file, or they refuse each other's tokens (a
	// warning at start says so).
	SigningKeyFile string
	SigningAlg     string        // AUTH_SIGNING_ALG, EdDSA (or ES256), for generated keys
	KeyRotation    time.Duration // AUTH_KEY_ROTATION, 24h; 0 = never
	KeyCheck       time.Duration // AUTH_KEY_CHECK, 30s: how often rotation and the file are checked

	// Credential is AUTH_SERVICE_CREDENTIAL. The embedded default falls
	// back to DevCredential with a warning; with Redis, empty refuses every
	// trusted call (with a warning at start).
	Credential  string
	CORSOrigins []string // AUTH_CORS_ORIGINS, http://127.0.0.1:7100,http://localhost:7100
	// TrustedProxies is AUTH_TRUSTED_PROXIES: CIDRs of reverse proxies whose
	// X-Forwarded-For names the client for login rate limiting; "" = none.
	TrustedProxies server.TrustedProxies

	LoginPerAccount int // AUTH_LOGIN_PER_ACCOUNT, 5 a minute
	LoginPerAddress int // AUTH_LOGIN_PER_ADDRESS, 20 a minute

	Argon2      password.Params // AUTH_ARGON2_TIME 3, AUTH_ARGON2_MEMORY 64MiB, AUTH_ARGON2_THREADS 2
	Argon2Slots int             // AUTH_ARGON2_CONCURRENCY, 2: hashes computed at once

	ShutdownGrace time.Duration // AUTH_SHUTDOWN_GRACE, 10s
	// MaxCallTime is AUTH_MAX_CALL_TIME, 10s, in [100ms, 5m]: the longest a
	// unary call may work when its client sets no sooner deadline.
	MaxCallTime time.Duration
	// MaxRevocationWatchers is AUTH_MAX_REVOCATION_WATCHERS, 256, in
	// [1, 100000]: WatchRevocations streams open at once.
	MaxRevocationWatchers int
	LogLevel              slog.Level // AUTH_LOG_LEVEL, info

	// Demo is AUTH_DEMO, false: add the demo user and conversation to the
	// store at start, keeping a demo user already there. Always true in the
	// embedded default.
	Demo bool
	// Embedded is true when RedisURL is empty.
	Embedded bool
	// UsedDevCredential is true when Credential fell back to DevCredential.
	UsedDevCredential bool
}

// Load reads the configuration, reporting every bad variable at once.
func Load(env *config.Env) (Config, error) {
	c := Config{
		GRPCAddr:    env.String("AUTH_GRPC_ADDR", "127.0.0.1:7200"),
		HTTPAddr:    env.String("AUTH_HTTP_ADDR", "127.0.0.1:7201"),
		MetricsAddr: env.Addr("AUTH_METRICS_ADDR", "127.0.0.1:7202"),
		RedisURL:    env.String("AUTH_REDIS_URL", env.String("REDIS_URL", "")),
		RedisPrefix: env.String("AUTH_REDIS_PREFIX", "auth:"),
		Demo:        env.Bool("AUTH_DEMO", false),
		Issuer:      env.String("AUTH_ISSUER", "switchboard-auth"),
		Audience:    env.String("AUTH_AUDIENCE", "switchboard"),

		AccessTTL:        env.Duration("AUTH_ACCESS_TTL", 15*time.Minute, time.Minute, 24*time.Hour),
		SessionLifetime:  env.Duration("AUTH_SESSION_LIFETIME", 720*time.Hour, time.Hour, 8760*time.Hour),
		RefreshGrace:     env.Duration("AUTH_REFRESH_GRACE", 10*time.Second, 0, time.Minute),
		Leeway:           env.Duration("AUTH_LEEWAY", 30*time.Second, 0, token.MaxLeeway),
		MaxTokenBytes:    env.Int("AUTH_MAX_TOKEN_BYTES", 4096, 1024, 16384),
		RevocationBudget: env.Duration("AUTH_REVOCATION_BUDGET", 5*time.Second, 100*time.Millisecond, time.Minute),
		CacheEntries:     env.Int("AUTH_CACHE_ENTRIES", 100_000, 0, 10_000_000),

		SigningKeyFile: env.String("AUTH_SIGNING_KEY_FILE", ""),
		SigningAlg:     env.OneOf("AUTH_SIGNING_ALG", token.EdDSA, token.Algorithms...),
		KeyRotation:    env.Duration("AUTH_KEY_ROTATION", 24*time.Hour, 0, 8760*time.Hour),
		KeyCheck:       env.Duration("AUTH_KEY_CHECK", 30*time.Second, time.Second, time.Hour),

		Credential:  env.Secret("AUTH_SERVICE_CREDENTIAL"),
		CORSOrigins: env.List("AUTH_CORS_ORIGINS", []string{"http://127.0.0.1:7100", "http://localhost:7100"}),

		LoginPerAccount: env.Int("AUTH_LOGIN_PER_ACCOUNT", 5, 1, 10_000),
		LoginPerAddress: env.Int("AUTH_LOGIN_PER_ADDRESS", 20, 1, 100_000),

		Argon2: password.Params{
			Time:      uint32(env.Int("AUTH_ARGON2_TIME", 3, 1, 16)),
			MemoryKiB: uint32(env.Bytes("AUTH_ARGON2_MEMORY", 64<<20, 64<<10, 1<<30) >> 10),
			Threads:   uint8(env.Int("AUTH_ARGON2_THREADS", 2, 1, 16)),
		},
		Argon2Slots:           env.Int("AUTH_ARGON2_CONCURRENCY", 2, 1, 64),
		ShutdownGrace:         env.Duration("AUTH_SHUTDOWN_GRACE", 10*time.Second, 0, 5*time.Minute),
		MaxCallTime:           env.Duration("AUTH_MAX_CALL_TIME", 10*time.Second, 100*time.Millisecond, 5*time.Minute),
		MaxRevocationWatchers: env.Int("AUTH_MAX_REVOCATION_WATCHERS", grpcapi.DefaultMaxWatchers, 1, 100_000),
	}
	proxies, err := server.ParseTrustedProxies(env.List("AUTH_TRUSTED_PROXIES", nil))
	if err != nil {
		env.Fail("AUTH_TRUSTED_PROXIES", "%v", err)
	}
	c.TrustedProxies = proxies
	level, err := logging.ParseLevel(env.String("AUTH_LOG_LEVEL", "info"))
	if err != nil {
		env.Fail("AUTH_LOG_LEVEL", "%v", err)
	}
	c.LogLevel = level
	c.check(env)
	return c, env.Err()
}

// check applies the rules that span several settings.
func (c *Config) check(env *config.Env) {
	c.Embedded = c.RedisURL == ""
	c.Demo = c.Demo || c.Embedded
	if c.Credential == "" && c.Embedded {
		c.Credential, c.UsedDevCredential = DevCredential, true
	}
	if c.KeyRotation > 0 && c.KeyRotation < c.AccessTTL {
		env.Fail("AUTH_KEY_ROTATION", "%s is shorter than AUTH_ACCESS_TTL %s", c.KeyRotation, c.AccessTTL)
	}
	if c.Argon2.MemoryKiB < 8*uint32(c.Argon2.Threads) {
		env.Fail("AUTH_ARGON2_MEMORY", "must be at least 8 KiB per thread")
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			env.Fail("AUTH_CORS_ORIGINS", "a wildcard is not allowed; list each origin")
		}
	}
}

// String describes the configuration without secrets, for the start-up
// log line.
func (c Config) String() string {
	s := "store=redis"
	if c.Embedded {
		s = "store=memory"
	}
	if c.Demo {
		s += fmt.Sprintf(" demo_user=%s demo_conversation=%s", DemoEmail, DemoConversation)
	}
	keys := "keys=file"
	if c.SigningKeyFile == "" {
		keys = fmt.Sprintf("keys=generated(%s, rotating every %s, lost on exit)", c.SigningAlg, c.KeyRotation)
	}
	return fmt.Sprintf("%s %s issuer=%s audience=%s access_ttl=%s", s, keys, c.Issuer, c.Audience, c.AccessTTL)
}
