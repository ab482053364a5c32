package proctest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeService writes a shell script that acts as a service: it prints
// its variable, passes `healthcheck` when HEALTHY=1, and exits on SIGTERM.
func fakeService(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchboard-fake")
	script := `#!/bin/sh
if [ "$1" = healthcheck ]; then [ "$HEALTHY" = 1 ]; exit; fi
echo "started $GREETING"
trap 'echo stopping; exit 0' TERM
while :; do sleep 0.05; done
`
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestProcLifecycle(t *testing.T) {
	bin := fakeService(t)
	if err := Healthcheck(bin, "HEALTHY=0"); err == nil {
		t.Fatal("healthcheck passes with HEALTHY=0")
	}
	p := Start(t, bin, "HEALTHY=1", "GREETING=hello")
	p.WaitHealthy(t, 10*time.Second)
	if !p.Running() {
		t.Fatal("not running after start")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("running after Stop")
	}
	if got := p.ExitCode(); got != 0 {
		t.Fatalf("exit code %d after a clean stop, want 0", got)
	}
	p.Restart(t)
	if !p.Running() {
		t.Fatal("not running after Restart")
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(p.Output(), "started hello") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.ExitCode(); got != -1 {
		t.Fatalf("exit code %d while running, want -1", got)
	}
	p.Kill()
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if got := p.ExitCode(); got != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1", got)
	}
	if got := p.Output(); strings.Count(got, "started hello") != 2 || !strings.Contains(got, "stopping") {
		t.Fatalf("output %q: want two starts and a stop", got)
	}
}

func TestOutputKeepsTheTail(t *testing.T) {
	var o output
	o.Write([]byte(strings.Repeat("a", outputLimit)))
	o.Write([]byte("end"))
	got := o.String()
	if len(got) != outputLimit || !strings.HasSuffix(got, "end") {
		t.Fatalf("kept %d bytes ending %q", len(got), got[len(got)-3:])
	}
}

func TestRepoRootHoldsGoWork(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatal(err)
	}
}

func TestFreeAddrIsLoopback(t *testing.T) {
	if a := FreeAddr(t); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q", a)
	}
}

func TestBuildRejectsPaths(t *testing.T) {
	for _, name := range []string{"", "../x", "a/b"} {
		if _, err := buildOnce(name); err == nil {
			t.Errorf("buildOnce(%q) accepted", name)
		}
	}
}

func TestBaseEnvDropsServiceVariables(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://elsewhere:6379")
	t.Setenv("GATEWAY_RATE", "1")
	t.Setenv("SWITCHBOARD_KEEP", "yes")
	env := strings.Join(baseEnv(), "\n")
	if strings.Contains(env, "REDIS_URL=") || strings.Contains(env, "GATEWAY_RATE=") {
		t.Fatalf("service variables reached the processes' environment")
	}
	if !strings.Contains(env, "SWITCHBOARD_KEEP=yes") {
		t.Fatalf("other variables were dropped")
	}
}
