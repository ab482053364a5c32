// Package netport picks free loopback ports for processes a program
// starts and may restart on the same address: the tests' helpers and the
// gateway's load generator.
package netport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
)

// Free returns a loopback port that is free, with port+o free too for
// each offset o (a Redis cluster node also binds its port plus 10000), all
// below the kernel's ephemeral range.
//
// A port from Listen(":0") lies inside that range, where the kernel picks
// the local ports of outgoing connections: between the moment a test
// learns the port and the moment its process binds it, or while a process
// is down for a restart, any connection of any test on the machine can
// take it. Below the range only another server can, and the choice is
// random over thousands of ports.
func Free(offsets ...int) (int, error) {
	span := 0
	for _, o := range offsets {
		span = max(span, o)
	}
	high := ephemeralLow() - span
	if high-minPort < 1000 {
		return 0, fmt.Errorf("netport: offsets %v leave no ports below %d", offsets, high+span)
	}
	for range 200 {
		port := minPort + rand.IntN(high-minPort)
		if bindable(port) && allBindable(port, offsets) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("netport: no free port below %d", high)
}

// FreeAddr returns 127.0.0.1 and a port from Free.
func FreeAddr() (string, error) {
	port, err := Free()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// The ports Free chooses from start at minPort, above the well-known
// and registered services a machine is likely to run.
const (
	minPort    = 10000
	defaultLow = 32768 // where Linux's ephemeral range starts by default
)

// ephemeralLow is where the kernel's range of local ports for outgoing
// connections starts.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultLow
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low <= minPort {
		return defaultLow
	}
	return low
}

func allBindable(port int, offsets []int) bool {
	for _, o := range offsets {
		if !bindable(port + o) {
			return false
		}
	}
	return true
}

func bindable(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
