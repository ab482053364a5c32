package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the networks of the reverse proxies in front of a
// service, whose X-Forwarded-For header names the client. Empty: no proxy is
// trusted and the client is the peer.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads CIDRs such as 10.0.0.0/8; the error quotes the
// first that is not one.
func ParseTrustedProxies(cidrs []string) (TrustedProxies, error) {
	var p TrustedProxies
	for _, s := range cidrs {
		prefix, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
		}
		p = append(p, prefix.Masked())
	}
	return p, nil
}

// ClientAddress is the address of the client behind r: the peer's, or,
// when the peer is a trusted proxy, the nearest address of X-Forwarded-For
// that is not a trusted proxy (read from the right, where proxies append,
// so that what the client wrote on the left is never believed).
func (p TrustedProxies) ClientAddress(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if !p.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if addr = hop.Unmap(); !p.trusted(addr) {
			break
		}
	}
	return addr.String()
}

func (p TrustedProxies) trusted(addr netip.Addr) bool {
	for _, prefix := range p {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}
