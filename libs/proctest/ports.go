package proctest

import (
	"testing"

	"switchboard/libs/netport"
)

// FreeAddr returns a loopback host:port that is free, chosen by FreePort.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	addr, err := netport.FreeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	return addr
}

// FreePort returns a loopback port that is free, with port+o free too for
// each offset o (a Redis cluster node also binds its port plus 10000), all
// below the kernel's ephemeral range: see netport.Free.
func FreePort(tb testing.TB, offsets ...int) int {
	tb.Helper()
	port, err := netport.Free(offsets...)
	if err != nil {
		tb.Fatal(err)
	}
	return port
}
