package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"switchboard/libs/config"
	"switchboard/libs/logging"
	"switchboard/libs/store"
)

// Config is everything the cache service reads at start. Each field names
// its variable and its default; loadConfig fills and checks them all.
type Config struct {
	// GRPCAddr is where cache.v1 is served. CACHE_GRPC_ADDR,
	// default 127.0.0.1:7300.
	GRPCAddr string
	// HTTPAddr serves /metrics and /healthz. CACHE_HTTP_ADDR,
	// default 127.0.0.1:7301.
	HTTPAddr string
	// LogLevel is debug, info, warn or error. CACHE_LOG_LEVEL, default info.
	LogLevel slog.Level
	// Caches are the named caches, built at start and fixed for the
	// process's life. CACHE_CACHES, default defaultCaches.
	Caches []CacheSpec
	// Limits bound every request. CACHE_MAX_* and CACHE_WATCH_BUFFER.
	Limits Limits
	// Grace is how long in-flight calls may run after a stop signal before
	// they are cut. CACHE_GRACE, default 10s.
	Grace time.Duration
	// MaxCallTime is the longest a unary call may work when its client
	// sets no sooner deadline. CACHE_MAX_CALL_TIME, default 5s.
	MaxCallTime time.Duration
	// Credential, when set, is required on every cache.v1 call as
	// "authorization: Bearer <credential>". CACHE_SERVICE_CREDENTIAL,
	// default empty: no credential asked, so keep the listener private.
	Credential string
}

// Limits bound the size of what one call may carry or hold.
type Limits struct {
	// MaxKeyBytes caps a key. CACHE_MAX_KEY_BYTES, default 1KiB.
	MaxKeyBytes int
	// MaxValueBytes caps a value. CACHE_MAX_VALUE_BYTES, default 1MiB.
	MaxValueBytes int
	// MaxBatch caps the keys of a BatchGet and the entries of a BatchSet.
	// CACHE_MAX_BATCH, default 1000.
	MaxBatch int
	// MaxTTL caps the TTL a client may ask for. CACHE_MAX_TTL, default 24h.
	MaxTTL time.Duration
	// MaxRequestBytes caps one inbound gRPC message, so a batch as a
	// whole. CACHE_MAX_REQUEST_BYTES, default 16MiB.
	MaxRequestBytes int
	// WatchBuffer is the number of events held for one watcher before
	// further events are dropped. CACHE_WATCH_BUFFER, default 1024.
	WatchBuffer int
	// MaxWatchers caps the Watch streams open at once over all caches; 0
	// refuses every Watch. CACHE_MAX_WATCHERS, default 128.
	MaxWatchers int
}

// CacheSpec describes one named cache: the settings of its bounded store.
type CacheSpec struct {
	Name       string
	Policy     store.Policy
	MaxEntries int           // 0: no entry limit
	DefaultTTL time.Duration // 0: entries without a TTL never expire
	MaxBytes   int64         // 0: no byte limit
}

// String writes the spec in the syntax of CACHE_CACHES.
func (s CacheSpec) String() string {
	ttl := "0"
	if s.DefaultTTL > 0 {
		ttl = s.DefaultTTL.String()
	}
	return fmt.Sprintf("%s:%s:%d:%s:%s", s.Name, s.Policy, s.MaxEntries, ttl,
		config.FormatBytes(s.MaxBytes))
}

// defaultCaches are the caches of the system this service replaces, with
// the same policies, entry limits and TTLs, plus a byte limit each.
var defaultCaches = []CacheSpec{
	{Name: "conversations", Policy: store.LRU, MaxEntries: 500, DefaultTTL: 10 * time.Minute, MaxBytes: 8 << 20},
	{Name: "users", Policy: store.LRU, MaxEntries: 200, DefaultTTL: 5 * time.Minute, MaxBytes: 2 << 20},
	{Name: "messages", Policy: store.FIFO, MaxEntries: 2000, DefaultTTL: 30 * time.Minute, MaxBytes: 16 << 20},
}

// Bounds of the settings, so that a typo cannot ask for a terabyte.
const (
	maxCaches       = 64
	maxCacheName    = 64
	maxCacheEntries = 1 << 30
	minCacheBytes   = 1 << 10 // below this, the overhead per entry leaves no room
	maxCacheBytes   = 64 << 30
	maxDefaultTTL   = 365 * 24 * time.Hour
)

// loadConfig reads every variable and returns all problems at once, each
// naming its variable.
func loadConfig(env *config.Env) (Config, error) {
	var c Config
	c.GRPCAddr = env.String("CACHE_GRPC_ADDR", "127.0.0.1:7300")
	c.HTTPAddr = env.String("CACHE_HTTP_ADDR", "127.0.0.1:7301")
	level := env.OneOf("CACHE_LOG_LEVEL", "info", "debug", "info", "warn", "error")
	c.LogLevel, _ = logging.ParseLevel(level)
	c.Caches = parseCaches(env, "CACHE_CACHES")
	c.Limits = loadLimits(env)
	c.Grace = env.Duration("CACHE_GRACE", 10*time.Second, 0, 10*time.Minute)
	c.MaxCallTime = env.Duration("CACHE_MAX_CALL_TIME", 5*time.Second, 10*time.Millisecond, 10*time.Minute)
	c.Credential = env.Secret("CACHE_SERVICE_CREDENTIAL")
	return c, env.Err()
}

func loadLimits(env *config.Env) Limits {
	var l Limits
	l.MaxKeyBytes = int(env.Bytes("CACHE_MAX_KEY_BYTES", 1<<10, 1, 64<<10))
	l.MaxValueBytes = int(env.Bytes("CACHE_MAX_VALUE_BYTES", 1<<20, 1, 256<<20))
	l.MaxBatch = env.Int("CACHE_MAX_BATCH", 1000, 1, 100_000)
	l.MaxTTL = env.Duration("CACHE_MAX_TTL", 24*time.Hour, time.Second, maxDefaultTTL)
	l.MaxRequestBytes = int(env.Bytes("CACHE_MAX_REQUEST_BYTES", 16<<20, 64<<10, 1<<30))
	l.WatchBuffer = env.Int("CACHE_WATCH_BUFFER", 1024, 1, 1<<20)
	l.MaxWatchers = env.Int("CACHE_MAX_WATCHERS", 128, 0, 100_000)

	// One Set of the largest key and value must fit in one message.
	if need := l.MaxKeyBytes + l.MaxValueBytes + 1<<10; l.MaxRequestBytes < need {
		env.Fail("CACHE_MAX_REQUEST_BYTES", "%s is below CACHE_MAX_KEY_BYTES + "+
			"CACHE_MAX_VALUE_BYTES + 1KiB (%s): the largest Set would not fit",
			config.FormatBytes(int64(l.MaxRequestBytes)), config.FormatBytes(int64(need)))
	}
	return l
}

// parseCaches reads a comma-separated list of caches, each
// name:policy:max_entries:default_ttl:max_bytes, for example
// "users:lru:200:5m:2MiB". A TTL of 0 means no default expiry; a limit of 0
// means none, but every cache needs at least one of the two limits.
func parseCaches(env *config.Env, name string) []CacheSpec {
	def := make([]string, len(defaultCaches))
	for i, s := range defaultCaches {
		def[i] = s.String()
	}
	items := env.List(name, def)
	if len(items) == 0 {
		env.Fail(name, "no cache configured")
		return nil
	}
	if len(items) > maxCaches {
		env.Fail(name, "%d caches, more than the %d allowed", len(items), maxCaches)
		return nil
	}

	specs := make([]CacheSpec, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, item := range items {
		spec, err := parseCacheSpec(item)
		if err == nil && seen[spec.Name] {
			err = fmt.Errorf("cache %q is configured twice", spec.Name)
		}
		if err != nil {
			env.Fail(name, "cache %d %q: %v", i+1, item, err)
			continue
		}
		seen[spec.Name] = true
		specs = append(specs, spec)
	}
	return specs
}

// parseCacheSpec reads one name:policy:max_entries:default_ttl:max_bytes.
func parseCacheSpec(s string) (CacheSpec, error) {
	var spec CacheSpec
	parts := strings.Split(s, ":")
	if len(parts) != 5 {
		return spec, fmt.Errorf("want name:policy:max_entries:default_ttl:max_bytes, got %d fields", len(parts))
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}

	var err error
	if spec.Name, err = parseCacheName(parts[0]); err != nil {
		return spec, err
	}
	if spec.Policy, err = store.ParsePolicy(parts[1]); err != nil {
		return spec, fmt.Errorf("policy %q is not one of lru, lfu, fifo, tinylfu", parts[1])
	}
	if spec.MaxEntries, err = parseMaxEntries(parts[2]); err != nil {
		return spec, err
	}
	if spec.DefaultTTL, err = parseDefaultTTL(parts[3]); err != nil {
		return spec, err
	}
	if spec.MaxBytes, err = parseMaxBytes(parts[4]); err != nil {
		return spec, err
	}
	if spec.MaxEntries == 0 && spec.MaxBytes == 0 {
		return spec, fmt.Errorf("max_entries and max_bytes are both 0: give at least one limit")
	}
	return spec, nil
}

// parseCacheName accepts 1 to 64 of a-z, 0-9, '_' and '-', starting with a
// letter or digit; the name is a metric label, so it stays plain.
func parseCacheName(s string) (string, error) {
	if s == "" || len(s) > maxCacheName {
		return "", fmt.Errorf("name must have 1 to %d characters", maxCacheName)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || i > 0 && (r == '_' || r == '-')
		if !ok {
			return "", fmt.Errorf("name %q may hold only a-z, 0-9, '_' and '-', and must start with a letter or digit", s)
		}
	}
	return s, nil
}

func parseMaxEntries(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxCacheEntries {
		return 0, fmt.Errorf("max_entries %q is not an integer in [0, %d]", s, maxCacheEntries)
	}
	return n, nil
}

func parseDefaultTTL(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxDefaultTTL {
		return 0, fmt.Errorf("default_ttl %q is not a duration such as 10m, in [0, %s]", s, maxDefaultTTL)
	}
	return d, nil
}

func parseMaxBytes(s string) (int64, error) {
	n, err := config.ParseBytes(s)
	if err != nil || n > maxCacheBytes || n > 0 && n < minCacheBytes {
		return 0, fmt.Errorf("max_bytes %q is not 0 or a size such as 8MiB, in [%s, %s]",
			s, config.FormatBytes(minCacheBytes), config.FormatBytes(maxCacheBytes))
	}
	return n, nil
}
