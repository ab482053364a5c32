package netport

import (
	"net"
	"strconv"
	"testing"
)

// The ports are below the ephemeral range, so no outgoing connection can
// take them, and each offset's port is free as well.
func TestFreeBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		port, err := Free(10000)
		if err != nil {
			t.Fatal(err)
		}
		if port < minPort || port+10000 >= low {
			t.Fatalf("Free(10000) = %d, want [%d, %d)", port, minPort, low-10000)
		}
		for _, p := range []int{port, port + 10000} {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("port %d not free: %v", p, err)
			}
			l.Close()
		}
	}
}

// An offset that leaves too few ports below the range is an error, not a
// port that may collide.
func TestFreeRefusesAnOffsetPastTheRange(t *testing.T) {
	if port, err := Free(ephemeralLow()); err == nil {
		t.Fatalf("Free(%d) = %d, want an error", ephemeralLow(), port)
	}
}
