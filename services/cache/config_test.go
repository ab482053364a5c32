package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/libs/config"
	"switchboard/libs/store"
)

func load(vars map[string]string) (Config, error) {
	return loadConfig(config.New(config.Map(vars)))
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := load(nil)
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.GRPCAddr != "127.0.0.1:7300" || cfg.HTTPAddr != "127.0.0.1:7301" || cfg.LogLevel != slog.LevelInfo {
		t.Errorf("addresses and level = %s %s %v", cfg.GRPCAddr, cfg.HTTPAddr, cfg.LogLevel)
	}
	if !slices.Equal(cfg.Caches, defaultCaches) {
		t.Errorf("caches = %v, want %v", cfg.Caches, defaultCaches)
	}
	want := Limits{
		MaxKeyBytes: 1 << 10, MaxValueBytes: 1 << 20, MaxBatch: 1000, MaxTTL: 24 * time.Hour,
		MaxRequestBytes: 16 << 20, WatchBuffer: 1024, MaxWatchers: 128,
	}
	if cfg.Limits != want {
		t.Errorf("limits = %+v, want %+v", cfg.Limits, want)
	}
	if cfg.Grace != 10*time.Second || cfg.Credential != "" {
		t.Errorf("grace %v, credential set %v", cfg.Grace, cfg.Credential != "")
	}
	// The defaults of the old system, spelled out once more.
	names := map[string]string{
		"conversations": "conversations:lru:500:10m0s:8MiB",
		"users":         "users:lru:200:5m0s:2MiB",
		"messages":      "messages:fifo:2000:30m0s:16MiB",
	}
	for _, c := range cfg.Caches {
		if names[c.Name] != c.String() {
			t.Errorf("cache %s = %s, want %s", c.Name, c, names[c.Name])
		}
	}
}

func TestConfigGood(t *testing.T) {
	cfg, err := load(map[string]string{
		"CACHE_GRPC_ADDR":         ":9000",
		"CACHE_LOG_LEVEL":         "debug",
		"CACHE_CACHES":            " sessions:tinylfu:0:0:64MiB , hot-keys:lfu:10000:1h:0,a_b:fifo:1:30s:1K ",
		"CACHE_MAX_BATCH":         "50",
		"CACHE_MAX_VALUE_BYTES":   "4MiB",
		"CACHE_MAX_REQUEST_BYTES": "8MiB",
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	want := []CacheSpec{
		{Name: "sessions", Policy: store.TinyLFU, MaxBytes: 64 << 20},
		{Name: "hot-keys", Policy: store.LFU, MaxEntries: 10000, DefaultTTL: time.Hour},
		{Name: "a_b", Policy: store.FIFO, MaxEntries: 1, DefaultTTL: 30 * time.Second, MaxBytes: 1 << 10},
	}
	if !slices.Equal(cfg.Caches, want) {
		t.Errorf("caches = %v, want %v", cfg.Caches, want)
	}
	if cfg.GRPCAddr != ":9000" || cfg.LogLevel != slog.LevelDebug || cfg.Limits.MaxBatch != 50 ||
		cfg.Limits.MaxValueBytes != 4<<20 || cfg.Limits.MaxRequestBytes != 8<<20 {
		t.Errorf("config = %+v", cfg)
	}
}

func TestConfigBad(t *testing.T) {
	tests := []struct {
		name, variable, value string
		want                  []string // parts of the message besides the variable
	}{
		{"log level", "CACHE_LOG_LEVEL", "loud", []string{"loud"}},
		{"fields", "CACHE_CACHES", "users:lru:200:5m", []string{"users:lru:200:5m", "4 fields"}},
		{"name chars", "CACHE_CACHES", "Users:lru:200:5m:1MiB", []string{"Users"}},
		{"name leading dash", "CACHE_CACHES", "-u:lru:200:5m:1MiB", []string{"-u"}},
		{"name empty", "CACHE_CACHES", ":lru:200:5m:1MiB", []string{"name"}},
		{"name long", "CACHE_CACHES", strings.Repeat("n", 65) + ":lru:1:0:0", []string{"name"}},
		{"policy", "CACHE_CACHES", "users:mru:200:5m:1MiB", []string{`"mru"`}},
		{"entries", "CACHE_CACHES", "users:lru:lots:5m:1MiB", []string{`"lots"`, "max_entries"}},
		{"entries negative", "CACHE_CACHES", "users:lru:-1:5m:1MiB", []string{`"-1"`}},
		{"ttl", "CACHE_CACHES", "users:lru:200:soon:1MiB", []string{`"soon"`, "default_ttl"}},
		{"ttl negative", "CACHE_CACHES", "users:lru:200:-5m:1MiB", []string{`"-5m"`}},
		{"bytes", "CACHE_CACHES", "users:lru:200:5m:big", []string{`"big"`, "max_bytes"}},
		{"bytes too small", "CACHE_CACHES", "users:lru:200:5m:1000", []string{`"1000"`, "1KiB"}},
		{"bytes too big", "CACHE_CACHES", "users:lru:200:5m:1024GiB", []string{`"1024GiB"`}},
		{"no limit", "CACHE_CACHES", "users:lru:0:5m:0", []string{"at least one limit"}},
		{"twice", "CACHE_CACHES", "users:lru:1:0:0,users:fifo:2:0:0", []string{"cache 2", "twice"}},
		{"second of three", "CACHE_CACHES", "a:lru:1:0:0,b:lru:x:0:0,c:lru:1:0:0", []string{"cache 2", `"x"`}},
		{"none", "CACHE_CACHES", ",", []string{"no cache"}},
		{"key limit", "CACHE_MAX_KEY_BYTES", "0", []string{"outside"}},
		{"value limit", "CACHE_MAX_VALUE_BYTES", "1GiB", []string{"outside"}},
		{"batch", "CACHE_MAX_BATCH", "0", []string{"outside"}},
		{"batch word", "CACHE_MAX_BATCH", "many", []string{`"many"`}},
		{"max ttl", "CACHE_MAX_TTL", "100ms", []string{"outside"}},
		{"grace", "CACHE_GRACE", "forever", []string{`"forever"`}},
		{"watch buffer", "CACHE_WATCH_BUFFER", "0", []string{"outside"}},
		{"watchers", "CACHE_MAX_WATCHERS", "-1", []string{"outside"}},
		{"request below value", "CACHE_MAX_REQUEST_BYTES", "512KiB", []string{"CACHE_MAX_VALUE_BYTES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(map[string]string{tt.variable: tt.value})
			if err == nil {
				t.Fatalf("%s=%q was accepted", tt.variable, tt.value)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.variable+":") {
				t.Errorf("message %q does not start with %s", msg, tt.variable)
			}
			for _, part := range tt.want {
				if !strings.Contains(msg, part) {
					t.Errorf("message %q lacks %q", msg, part)
				}
			}
		})
	}
}

// Several bad variables are all reported at once.
func TestConfigReportsEveryBadVariable(t *testing.T) {
	_, err := load(map[string]string{
		"CACHE_CACHES":    "x:lru:1:0:0:extra",
		"CACHE_MAX_BATCH": "-3",
		"CACHE_GRACE":     "1y",
	})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, v := range []string{"CACHE_CACHES", "CACHE_MAX_BATCH", "CACHE_GRACE"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error %q does not name %s", err, v)
		}
	}
}

func TestCacheSpecRoundTrip(t *testing.T) {
	for _, s := range defaultCaches {
		got, err := parseCacheSpec(s.String())
		if err != nil || got != s {
			t.Errorf("parse(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
}
