package server

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientAddress(t *testing.T) {
	proxies, err := ParseTrustedProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "192.0.2.7:5555", nil, "192.0.2.7"},
		{"untrusted peer's header ignored", "192.0.2.7:5555", []string{"203.0.113.9"}, "192.0.2.7"},
		{"trusted proxy", "10.1.2.3:5555", []string{"203.0.113.9"}, "203.0.113.9"},
		{"spoofed left part ignored", "10.1.2.3:5555", []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"chain of proxies", "10.1.2.3:5555", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"two headers", "10.1.2.3:5555", []string{"198.51.100.1", "203.0.113.9"}, "203.0.113.9"},
		{"garbage stops the walk", "10.1.2.3:5555", []string{"203.0.113.9, junk"}, "10.1.2.3"},
		{"no header", "10.1.2.3:5555", nil, "10.1.2.3"},
		{"ipv4-mapped peer", "[::ffff:10.1.2.3]:5555", []string{"203.0.113.9"}, "203.0.113.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := proxies.ClientAddress(r); got != tc.want {
				t.Fatalf("ClientAddress = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	p, err := ParseTrustedProxies([]string{"10.1.2.3/8", "fd00::/8"})
	if err != nil || len(p) != 2 || p[0].String() != "10.0.0.0/8" {
		t.Fatalf("got %v %v, want two masked prefixes", p, err)
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/8", "10.0.0.0/33"}); err == nil || !strings.Contains(err.Error(), "10.0.0.0/33") {
		t.Fatalf("got %v, want an error quoting 10.0.0.0/33", err)
	}
}
