package deploy

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// TestHAProxyConfig runs HAProxy's own check on its configuration, with
// warnings fatal. Debian's haproxy package is older than the image the
// compose file runs (haproxy:3.0); the configuration keeps to what both
// accept.
func TestHAProxyConfig(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not on the PATH: install Debian's haproxy package " +
			"(apt-get install haproxy) to check deploy/haproxy/haproxy.cfg")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := filepath.Join(repoRoot(t), "deploy", "haproxy", "haproxy.cfg")
	out, err := exec.CommandContext(ctx, bin, "-c", "-dW", "-f", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

var serverTemplate = regexp.MustCompile(`(?m)^\s*server-template\s+\S+\s+\S+\s+([^:\s]+):(\d+)`)

// TestHAProxyTargets checks that every server template names a compose
// service and a port that service exposes, and that every port the load
// balancer publishes is one it binds.
func TestHAProxyTargets(t *testing.T) {
	cfg := string(readFile(t, "deploy/haproxy/haproxy.cfg"))
	p := loadCompose(t)
	matches := serverTemplate.FindAllStringSubmatch(cfg, -1)
	if len(matches) == 0 {
		t.Fatal("no server-template: replicas added by --scale would not be found")
	}
	for _, m := range matches {
		t.Run(m[1]+":"+m[2], func(t *testing.T) {
			checkExposed(t, p, m[1], m[2])
		})
	}

	lb, err := p.GetService("lb")
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range lb.Ports {
		if !regexp.MustCompile(`(?m)^\s*bind\s+:` + strconv.Itoa(int(port.Target)) + `\b`).MatchString(cfg) {
			t.Errorf("lb publishes container port %d, which haproxy.cfg does not bind", port.Target)
		}
	}
}

// checkExposed fails unless service name exists and exposes port.
func checkExposed(t *testing.T, p *types.Project, name, port string) {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("%s is not a compose service", name)
	}
	if !slices.Contains(s.Expose, port) {
		t.Errorf("compose service %s exposes %v, not %s", name, s.Expose, port)
	}
	for k, v := range s.Environment {
		if v == nil || !strings.HasSuffix(k, "_ADDR") {
			continue
		}
		host, lport, err := net.SplitHostPort(*v)
		if err != nil || (host != "" && !net.ParseIP(host).IsUnspecified()) {
			continue // not a listen address
		}
		if !slices.Contains(s.Expose, lport) {
			t.Errorf("%s listens on %s (%s) but does not expose it", name, *v, k)
		}
	}
}
