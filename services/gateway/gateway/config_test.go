package gateway_test

import (
	"strings"
	"testing"
	"time"

	"switchboard/libs/config"
	"switchboard/services/gateway/gateway"
)

func TestFromEnv(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := gateway.FromEnv(config.New(config.Map(nil)))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.HTTPAddr != "127.0.0.1:7100" || cfg.MetricsAddr != "127.0.0.1:7102" || cfg.RedisURL != "" || cfg.Conn.QueueBytes != 1<<20 ||
			cfg.Conn.MaxMessageBytes != 64<<10 || cfg.Drain != 10*time.Second || cfg.Conn.PingInterval != 25*time.Second {
			t.Fatalf("defaults %+v", cfg)
		}
		h := cfg.History
		if h.Conversation.Size != 1000 || h.Conversation.TTL != 24*time.Hour || h.User.Size != 100 ||
			h.User.TTL != time.Hour || h.IdempotencyWindow != 5*time.Minute {
			t.Fatalf("history defaults %+v", h)
		}
		if cfg.MaxPerAddress != 100 || len(cfg.TrustedProxies) != 0 || cfg.HeaderTimeout != 5*time.Second ||
			cfg.MaxCallTime != 10*time.Second {
			t.Fatalf("abuse defaults %+v", cfg)
		}
	})
	t.Run("set", func(t *testing.T) {
		cfg, err := gateway.FromEnv(config.New(config.Map(map[string]string{
			"GATEWAY_QUEUE_BYTES": "2MiB", "GATEWAY_ALLOWED_ORIGINS": "a.example, *.b.example",
			"GATEWAY_RATE": "5", "GATEWAY_DRAIN": "30s",
			"GATEWAY_HISTORY_CONVERSATION_SIZE": "50", "GATEWAY_HISTORY_USER_TTL": "10m",
			"GATEWAY_IDEMPOTENCY_WINDOW":          "1m",
			"GATEWAY_MAX_CONNECTIONS_PER_ADDRESS": "0", "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8",
			"GATEWAY_HEADER_TIMEOUT": "2s", "GATEWAY_MAX_CALL_TIME": "3s",
		})))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Conn.QueueBytes != 2<<20 || len(cfg.AllowedOrigins) != 2 || cfg.Conn.Rate != 5 || cfg.Drain != 30*time.Second {
			t.Fatalf("config %+v", cfg)
		}
		if cfg.History.Conversation.Size != 50 || cfg.History.User.TTL != 10*time.Minute ||
			cfg.History.IdempotencyWindow != time.Minute {
			t.Fatalf("history %+v", cfg.History)
		}
		if cfg.MaxPerAddress != 0 || len(cfg.TrustedProxies) != 2 || cfg.HeaderTimeout != 2*time.Second ||
			cfg.MaxCallTime != 3*time.Second {
			t.Fatalf("abuse settings %+v", cfg)
		}
	})
	t.Run("queue smaller than two messages", func(t *testing.T) {
		_, err := gateway.FromEnv(config.New(config.Map(map[string]string{
			"GATEWAY_QUEUE_BYTES": "64KiB", "GATEWAY_MAX_MESSAGE_BYTES": "64KiB",
		})))
		if err == nil || !strings.Contains(err.Error(), "GATEWAY_QUEUE_BYTES") {
			t.Fatalf("got %v, want an error naming GATEWAY_QUEUE_BYTES", err)
		}
	})
	t.Run("every bad variable is named", func(t *testing.T) {
		_, err := gateway.FromEnv(config.New(config.Map(map[string]string{
			"GATEWAY_QUEUE_BYTES": "lots", "GATEWAY_PING_INTERVAL": "-1s", "GATEWAY_LOG_LEVEL": "loud",
			"GATEWAY_HISTORY_USER_SIZE": "0", "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/33",
			"GATEWAY_METRICS_ADDR": "7102",
		})))
		if err == nil {
			t.Fatal("no error")
		}
		for _, name := range []string{"GATEWAY_QUEUE_BYTES", "GATEWAY_PING_INTERVAL", "GATEWAY_LOG_LEVEL", "GATEWAY_HISTORY_USER_SIZE",
			"GATEWAY_TRUSTED_PROXIES", "GATEWAY_METRICS_ADDR"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
		}
	})
}
