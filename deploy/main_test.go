package deploy

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"switchboard/libs/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		proctest.RemoveBuilds()
		os.Exit(code)
	}))
}
