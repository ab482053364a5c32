package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClientAddress(t *testing.T) {
	h := &Handler{proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
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
			r := httptest.NewRequest("POST", "/v1/token", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := h.clientAddress(r); got != tc.want {
				t.Fatalf("clientAddress = %q, want %q", got, tc.want)
			}
		})
	}
}
