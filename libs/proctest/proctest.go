package proctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds of the waits, generous for a loaded machine with -race.
const (
	buildTimeout = 5 * time.Minute
	stopTimeout  = 30 * time.Second
	checkTimeout = 10 * time.Second
	pollEvery    = 50 * time.Millisecond
	outputLimit  = 64 << 10
)

var (
	buildMu  sync.Mutex
	builds   = map[string]*build{}
	buildDir string
)

type build struct {
	once sync.Once
	path string
	err  error
}

// Build returns the path of services/<name> built for this test binary,
// with the race detector when the test runs with it. The first call for a
// name builds it; later calls (any test of the package) reuse it. The
// executables live in one temporary directory shared by the package's
// tests; TestMain removes it with RemoveBuilds.
func Build(t testing.TB, name string) string {
	t.Helper()
	path, err := buildOnce(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func buildOnce(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return "", fmt.Errorf("proctest: bad service name %q", name)
	}
	buildMu.Lock()
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "proctest-bin")
		if err != nil {
			buildMu.Unlock()
			return "", fmt.Errorf("proctest: %w", err)
		}
		buildDir = dir
	}
	b, ok := builds[name]
	if !ok {
		b = &build{}
		builds[name] = b
	}
	dir := buildDir
	buildMu.Unlock()
	b.once.Do(func() { b.path, b.err = goBuild(dir, name) })
	return b.path, b.err
}

func goBuild(dir, name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "switchboard-"+name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, "switchboard/services/"+name)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("proctest: go build services/%s: %w\n%s", name, err, tail(out, 4096))
	}
	return bin, nil
}

// RepoRoot returns the directory holding go.work: the one `go env GOWORK`
// names, or else the first found walking up from the working directory.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if gw := strings.TrimSpace(string(out)); err == nil && gw != "" && gw != "off" {
		return filepath.Dir(gw), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("proctest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("proctest: no go.work above the working directory")
		}
		dir = up
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// RemoveBuilds deletes the executables Build made. Call it from TestMain
// after m.Run, once no test runs them any more; Build after it builds
// again.
func RemoveBuilds() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	buildDir = ""
	builds = map[string]*build{}
}
