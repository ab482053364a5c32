package deploy

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// scaled are the compose services run as several replicas: no fixed host
// port and no container name, or `--scale` could not add one.
var scaled = []string{"gateway", "auth", "cache"}

// loadCompose loads and validates docker-compose.yml with compose-go, as
// `docker compose config` would, with the given profiles and an empty
// environment (so every ${VAR:-default} takes its default). It reads only
// the file: no Docker engine, no network.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	return loadComposeEnv(t, types.Mapping{}, profiles...)
}

// loadComposeEnv is loadCompose with env as the environment of the
// `docker compose` command.
func loadComposeEnv(t *testing.T, env types.Mapping, profiles ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.Profiles = profiles
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// TestComposeLoads validates the file with and without the monitoring
// profile: a service outside the profile must not depend on one inside it.
func TestComposeLoads(t *testing.T) {
	tests := []struct {
		name     string
		profiles []string
		want     []string
	}{
		{"default", nil, []string{"auth", "auth-keys", "cache", "gateway", "lb", "redis"}},
		{"monitoring", []string{"monitoring"},
			[]string{"auth", "auth-keys", "cache", "gateway", "grafana", "lb", "prometheus", "redis"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadCompose(t, tt.profiles...)
			if got := p.ServiceNames(); !slices.Equal(sorted(got), tt.want) {
				t.Errorf("services = %v, want %v", sorted(got), tt.want)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestComposeScaledServices checks that the scaled services can be scaled.
func TestComposeScaledServices(t *testing.T) {
	p := loadCompose(t, "*")
	for _, name := range scaled {
		t.Run(name, func(t *testing.T) {
			s, err := p.GetService(name)
			if err != nil {
				t.Fatal(err)
			}
			if s.ContainerName != "" {
				t.Errorf("container_name %q: --scale needs a name per replica", s.ContainerName)
			}
			for _, port := range s.Ports {
				if port.Published != "" {
					t.Errorf("publishes host port %s: a second replica could not bind it", port.Published)
				}
			}
		})
	}
	gw, err := p.GetService("gateway")
	if err != nil {
		t.Fatal(err)
	}
	if gw.GetScale() < 2 {
		t.Errorf("gateway runs %d replica by default, want at least 2 to show fan-out", gw.GetScale())
	}
}

// TestComposeHealth checks that every service has an exec-form health
// check, that ours run their binary's healthcheck subcommand, and that
// every dependency waits for its target to be healthy.
func TestComposeHealth(t *testing.T) {
	p := loadCompose(t, "*")
	for _, name := range sorted(p.ServiceNames()) {
		s := p.Services[name]
		t.Run(name, func(t *testing.T) {
			hc := s.HealthCheck
			switch {
			case hc == nil || len(hc.Test) == 0:
				t.Fatal("no healthcheck")
			case hc.Disable || hc.Test[0] == "NONE":
				t.Fatal("healthcheck disabled")
			case hc.Test[0] != "CMD":
				t.Fatalf("healthcheck %q is not in exec form [\"CMD\", ...]", hc.Test)
			}
			if slices.Contains(services, name) {
				want := []string{"CMD", "/switchboard-" + name, "healthcheck"}
				if !slices.Equal(hc.Test, want) {
					t.Errorf("healthcheck %q, want %q", hc.Test, want)
				}
			}
			for dep, d := range s.DependsOn {
				if want := wantCondition(p, dep); d.Condition != want {
					t.Errorf("depends_on %s: condition %q, want %s", dep, d.Condition, want)
				}
			}
		})
	}
}

// wantCondition is the condition to wait for on dep: completion for a
// one-shot job (restart "no"), health for everything else.
func wantCondition(p *types.Project, dep string) string {
	if s, err := p.GetService(dep); err == nil && s.Restart == types.RestartPolicyNo {
		return types.ServiceConditionCompletedSuccessfully
	}
	return types.ServiceConditionHealthy
}

// credentialVars hold the one service credential of the compose topology:
// what gateway presents to auth, what auth expects, what backends present
// to the publish API and to cache.
var credentialVars = []struct{ service, name string }{
	{"auth", "AUTH_SERVICE_CREDENTIAL"},
	{"gateway", "GATEWAY_AUTH_CREDENTIAL"},
	{"gateway", "GATEWAY_SERVICE_CREDENTIAL"},
	{"cache", "CACHE_SERVICE_CREDENTIAL"},
}

// TestComposeCredentials checks that the credential variables agree (the
// gateway presents to auth the credential auth expects), and that
// SWITCHBOARD_SERVICE_CREDENTIAL, when set, replaces the development value
// everywhere.
func TestComposeCredentials(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		env  types.Mapping
		want string // "": any value, as long as all agree
	}{
		{"development default", types.Mapping{}, ""},
		{"set by the operator", types.Mapping{"SWITCHBOARD_SERVICE_CREDENTIAL": secret}, secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadComposeEnv(t, tt.env)
			first := composeEnv(t, p, credentialVars[0].service, credentialVars[0].name)
			if first == "" || tt.want != "" && first != tt.want {
				t.Errorf("auth AUTH_SERVICE_CREDENTIAL = %q, want %q (non-empty)", first, tt.want)
			}
			for _, v := range credentialVars[1:] {
				if got := composeEnv(t, p, v.service, v.name); got != first {
					t.Errorf("%s %s = %q, want the credential auth has, %q", v.service, v.name, got, first)
				}
			}
		})
	}
}

// composeEnv returns the value of variable name in service svc, or "".
func composeEnv(t *testing.T, p *types.Project, svc, name string) string {
	t.Helper()
	s, err := p.GetService(svc)
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// TestComposeBuilds checks that each service is built from its own
// Dockerfile with the repository root as context.
func TestComposeBuilds(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			s, err := p.GetService(name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Build == nil {
				t.Fatal("not built")
			}
			if s.Build.Context != root {
				t.Errorf("build context %s, want the repository root %s", s.Build.Context, root)
			}
			want := filepath.Join("services", name, "Dockerfile")
			if s.Build.Dockerfile != want {
				t.Errorf("dockerfile %s, want %s", s.Build.Dockerfile, want)
			}
		})
	}
}

// TestComposeMounts checks that every bind mount's source exists in the
// repository, so that Prometheus, Grafana and HAProxy get their files.
func TestComposeMounts(t *testing.T) {
	p := loadCompose(t, "*")
	root := repoRoot(t)
	for _, name := range sorted(p.ServiceNames()) {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			t.Run(name+":"+v.Target, func(t *testing.T) {
				if !strings.HasPrefix(v.Source, root) {
					t.Errorf("bind source %s is outside the repository", v.Source)
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Error(err)
				}
				if !v.ReadOnly {
					t.Error("configuration mounted writable; add :ro")
				}
			})
		}
	}
}

// TestComposeRedis checks that Redis persists to an append-only file on a
// volume.
func TestComposeRedis(t *testing.T) {
	s, err := loadCompose(t).GetService("redis")
	if err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(s.Command, " ")
	if !strings.Contains(cmd, "--appendonly yes") {
		t.Errorf("command %q does not turn on the append-only file", cmd)
	}
	if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == "/data"
	}) {
		t.Error("no named volume on /data: the append-only file would die with the container")
	}
	if !strings.HasPrefix(s.Image, "redis:7") {
		t.Errorf("image %s, want Redis 7", s.Image)
	}
}

// TestComposeEnvironment checks each service's environment against the
// variables its code reads: every variable without a default is set, every
// variable whose default points at loopback is set to something else (in a
// container loopback is the container itself), and nothing is set that the
// service does not read (a misspelt name would silently take the default).
func TestComposeEnvironment(t *testing.T) {
	p := loadCompose(t)
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			s, err := p.GetService(name)
			if err != nil {
				t.Fatal(err)
			}
			reads, unresolved := serviceEnv(t, name)
			for _, at := range unresolved {
				t.Errorf("services/%s/%s: cannot tell which variable this reads; name it with a literal or constant", name, at)
			}
			if len(reads) == 0 {
				t.Fatalf("found no environment variable read by services/%s", name)
			}
			set := map[string]string{}
			for k, v := range s.Environment {
				if v != nil { // nil: passed through from the host, unset here
					set[k] = *v
				}
			}
			for _, problem := range checkEnv(reads, set) {
				t.Error(problem)
			}
			checkBalanced(t, name, set)
		})
	}
}

// checkBalanced checks that a service given a dns:/// target, which
// resolves to every replica, asks gRPC for round_robin: gRPC's default
// policy, pick_first, would send every call to one replica.
func checkBalanced(t *testing.T, name string, set map[string]string) {
	t.Helper()
	var dnsVars []string
	for _, k := range sortedNames(set) {
		if strings.HasPrefix(set[k], "dns:///") {
			dnsVars = append(dnsVars, k)
		}
	}
	if len(dnsVars) == 0 {
		return
	}
	found := false
	for _, dir := range binaryPackages(t, name) {
		found = found || sourceMentions(t, dir, "round_robin")
	}
	if !found {
		t.Errorf("%v name dns:/// targets but the %s binary never asks for round_robin: "+
			"every call would go to one replica", dnsVars, name)
	}
}

// checkEnv returns what is wrong with the environment set for a service
// that reads the variables reads. A variable without a default must be
// named, if only with an empty value: that says "off" on purpose, where a
// missing name may be an oversight.
func checkEnv(reads map[string]envVar, set map[string]string) []string {
	var problems []string
	for _, n := range sortedNames(reads) {
		v := reads[n]
		value, isSet := set[n]
		value = strings.TrimSpace(value)
		switch {
		case !v.HasDefault && !isSet:
			problems = append(problems, n+" has no default and is not set; set it, to \"\" if off is meant (read at "+v.At+")")
		case isAddress(n) && pointsAtLoopback(v.Default) && (value == "" || pointsAtLoopback(value)):
			problems = append(problems, n+" defaults to "+v.Default+", which is the container itself; set it")
		}
	}
	for _, n := range sortedNames(set) {
		if _, ok := reads[n]; !ok {
			problems = append(problems, n+" is set but the service never reads it")
		}
	}
	return problems
}

// isAddress reports whether the variable n names where to listen or what to
// dial, by the suffix of its name.
func isAddress(n string) bool {
	for _, suffix := range []string{"_ADDR", "_ADDRS", "_URL", "_HOST"} {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// pointsAtLoopback reports whether s names a loopback host: an address
// (127.0.0.1:7100, localhost:6379) or a URL (redis://127.0.0.1:6379).
func pointsAtLoopback(s string) bool {
	if s == "" {
		return false
	}
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s, _, _ = strings.Cut(rest, "/")
		if _, after, ok := strings.Cut(s, "@"); ok {
			s = after
		}
	}
	for _, hp := range strings.Split(s, ",") {
		host, _, err := net.SplitHostPort(strings.TrimSpace(hp))
		if err != nil {
			host = strings.TrimSpace(hp)
		}
		if host == "localhost" {
			return true
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	return false
}

// TestCheckEnv shows what the environment check catches.
func TestCheckEnv(t *testing.T) {
	reads := map[string]envVar{
		"X_ADDR":      {Name: "X_ADDR", HasDefault: true, Default: "127.0.0.1:7100"},
		"X_REDIS_URL": {Name: "X_REDIS_URL", HasDefault: true, Default: "redis://localhost:6379/0"},
		"X_SECRET":    {Name: "X_SECRET"},
		"X_LEVEL":     {Name: "X_LEVEL", HasDefault: true, Default: "info"},
		"X_ORIGINS":   {Name: "X_ORIGINS", HasDefault: true, Default: "http://localhost:8080"},
	}
	// with returns a complete environment changed by kv (key, value pairs;
	// a value of "-" removes the key).
	with := func(kv ...string) map[string]string {
		env := map[string]string{
			"X_ADDR": "0.0.0.0:7100", "X_REDIS_URL": "redis://redis:6379", "X_SECRET": "s",
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(env, kv[i])
			} else {
				env[kv[i]] = kv[i+1]
			}
		}
		return env
	}
	tests := []struct {
		name     string
		set      map[string]string
		problems int
	}{
		{"complete", with(), 0},
		{"origins on loopback are not addresses", with("X_ORIGINS", "http://localhost:8080"), 0},
		{"secret missing", with("X_SECRET", "-"), 1},
		{"secret off on purpose", with("X_SECRET", ""), 0},
		{"loopback kept", with("X_ADDR", "127.0.0.1:7100"), 1},
		{"loopback default", with("X_ADDR", "-", "X_REDIS_URL", "-"), 2},
		{"loopback URL", with("X_REDIS_URL", "redis://user@127.0.0.1:6379"), 1},
		{"misspelt", with("X_LEVLE", "debug"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkEnv(reads, tt.set); len(got) != tt.problems {
				t.Errorf("problems = %q, want %d", got, tt.problems)
			}
		})
	}
}

// TestReadmeListsVariables checks that README.md names, in backticks,
// every variable each service reads, so that its configuration tables keep
// up with the code.
func TestReadmeListsVariables(t *testing.T) {
	doc := string(readFile(t, "README.md"))
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			reads, _ := serviceEnv(t, name)
			for _, n := range sortedNames(reads) {
				if !strings.Contains(doc, "`"+n+"`") {
					t.Errorf("README.md does not name `%s` (read at %s)", n, reads[n].At)
				}
			}
		})
	}
}
