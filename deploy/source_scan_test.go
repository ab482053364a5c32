package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestScanEnv checks the scanner the deployment tests rely on, on a small
// package written for the purpose.
func TestScanEnv(t *testing.T) {
	dir := t.TempDir()
	src := `package main

import (
	"flag"
	"os"

	"switchboard/libs/config"
)

const addrVar = "DEMO_ADDR"

func load(env *config.Env) {
	env.String(addrVar, "127.0.0.1:1")
	env.String("DEMO_EMPTY", "")
	env.Secret("DEMO_SECRET")
	env.Int("DEMO_INT", 3, 0, 9)
	env.List("DEMO_NONE", nil)
	env.List("DEMO_LIST", []string{"a"})
	env.OneOf("DEMO_LEVEL", "info", "info", "debug")
	listOf(env, "DEMO_VIA_PARAM")
	listOf(env, "DEMO_VIA_PARAM2")
	_ = os.Getenv("DEMO_RAW")
	_ = flag.String("NOT_ENV", "x", "flags are not variables")
}

func listOf(env *config.Env, name string) { env.Duration(name, 0, 0, 1) }

func dynamic(e *config.Env, prefix string) { e.String(prefix+"X", "") }
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	test := "package main\nfunc f(env *config.Env) { env.String(\"ONLY_IN_TEST\", \"\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main_test.go"), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}

	vars, unresolved := scanEnv(t, dir)
	tests := []struct {
		name       string
		hasDefault bool
		def        string
	}{
		{"DEMO_ADDR", true, "127.0.0.1:1"},
		{"DEMO_EMPTY", false, ""},
		{"DEMO_SECRET", false, ""},
		{"DEMO_INT", true, ""},
		{"DEMO_NONE", false, ""},
		{"DEMO_LIST", true, ""},
		{"DEMO_LEVEL", true, "info"},
		{"DEMO_VIA_PARAM", true, ""},
		{"DEMO_VIA_PARAM2", true, ""},
		{"DEMO_RAW", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := vars[tt.name]
			if !ok {
				t.Fatalf("not found; found %v", sortedNames(vars))
			}
			if v.HasDefault != tt.hasDefault || v.Default != tt.def {
				t.Errorf("default = (%v, %q), want (%v, %q)", v.HasDefault, v.Default, tt.hasDefault, tt.def)
			}
		})
	}
	for _, absent := range []string{"NOT_ENV", "ONLY_IN_TEST"} {
		if _, ok := vars[absent]; ok {
			t.Errorf("%s reported as an environment variable", absent)
		}
	}
	if len(vars) != len(tests) {
		t.Errorf("found %v, want exactly the %d above", sortedNames(vars), len(tests))
	}
	if want := []string{"main.go:28 (String)"}; !slices.Equal(unresolved, want) {
		t.Errorf("unresolved = %q, want %q", unresolved, want)
	}
}

// TestMetricSourceHas checks how metric names are matched against the
// words of the source.
func TestMetricSourceHas(t *testing.T) {
	ms := &metricSource{
		words:    map[string]bool{"switchboard": true, "gateway": true, "connections": true, "switchboard_cache_": true, "hits_total": true, "fanout_seconds": true},
		prefixes: []string{"go_", "grpc_server_handling_seconds"},
	}
	tests := []struct {
		name string
		want bool
	}{
		{"switchboard_gateway_connections", true},
		{"switchboard_cache_hits_total", true},
		{"switchboard_gateway_fanout_seconds_bucket", true},
		{"go_goroutines", true},
		{"grpc_server_handling_seconds_bucket", true},
		{"switchboard_gateway_connection", false},
		{"switchboard_cache_hit_total", false},
		{"grpc_server_handled_total", false},
		{"switchboard_gateway_gateway_switchboard_connections", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ms.has(tt.name); got != tt.want {
				t.Errorf("has(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
