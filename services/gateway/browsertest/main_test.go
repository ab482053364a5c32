package browsertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// bins holds the binaries built for the run.
var bins struct {
	auth, gateway string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-browsertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browsertest:", err)
		os.Exit(1)
	}
	code := 1
	if err = build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "browsertest:", err)
	} else {
		code = runChecked(m)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func runChecked(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "browsertest: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

// build compiles the auth service and the gateway into dir.
func build(dir string) error {
	bins.auth = filepath.Join(dir, "switchboard-auth")
	bins.gateway = filepath.Join(dir, "switchboard-gateway")
	for _, b := range []struct{ out, src string }{
		{bins.auth, "../../auth"},
		{bins.gateway, ".."},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, ".")
		cmd.Dir = b.src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build in %s: %w\n%s", b.src, err, out)
		}
	}
	return nil
}
