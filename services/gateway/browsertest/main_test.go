package browsertest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"switchboard/libs/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveBuilds()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "browsertest: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}
