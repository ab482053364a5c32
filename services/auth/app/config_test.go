package app_test

import (
	"strings"
	"testing"

	"switchboard/libs/config"
	"switchboard/services/auth/app"
)

func TestLoadDefaults(t *testing.T) {
	c, err := app.Load(config.New(config.Map(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded || !c.UsedDevCredential || c.Credential != app.DevCredential {
		t.Fatalf("embedded default: embedded=%v dev credential=%v", c.Embedded, c.UsedDevCredential)
	}
	if c.GRPCAddr != "127.0.0.1:7200" || c.MetricsAddr != "127.0.0.1:7202" || c.AccessTTL.String() != "15m0s" || c.Leeway.String() != "30s" {
		t.Fatalf("defaults: %s %s %s", c.GRPCAddr, c.AccessTTL, c.Leeway)
	}
	r, err := app.Load(config.New(config.Map(map[string]string{"REDIS_URL": "redis://127.0.0.1:1"})))
	if err != nil {
		t.Fatal(err)
	}
	if r.Embedded || r.Credential != "" {
		t.Fatal("with Redis the dev credential must not apply")
	}
}

func TestLoadNamesEveryBadVariable(t *testing.T) {
	_, err := app.Load(config.New(config.Map(map[string]string{
		"AUTH_LEEWAY":            "5m",
		"AUTH_ACCESS_TTL":        "soon",
		"AUTH_SIGNING_ALG":       "HS256",
		"AUTH_CORS_ORIGINS":      "*",
		"AUTH_TRUSTED_PROXIES":   "10.0.0.0/33",
		"AUTH_KEY_ROTATION":      "30s",
		"AUTH_ARGON2_THREADS":    "0",
		"AUTH_LOG_LEVEL":         "loud",
		"AUTH_REVOCATION_BUDGET": "1h",
		"AUTH_METRICS_ADDR":      "localhost",
	})))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, name := range []string{
		"AUTH_LEEWAY", "AUTH_ACCESS_TTL", "AUTH_SIGNING_ALG", "AUTH_CORS_ORIGINS",
		"AUTH_TRUSTED_PROXIES", "AUTH_KEY_ROTATION", "AUTH_ARGON2_THREADS",
		"AUTH_LOG_LEVEL", "AUTH_REVOCATION_BUDGET", "AUTH_METRICS_ADDR",
	} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}
