package httpapi

import (
	"bytes"
	"net/netip"

	"github.com/gofiber/fiber/v2"
)

// Proxies are the address ranges of trusted proxies (Config.TrustedProxies).
type Proxies = []netip.Prefix

// ClientIP is the address of the client that sent the request, for
// throttling: the peer's address, unless the peer is a trusted proxy
// (Config.TrustedProxies); then the rightmost X-Forwarded-For hop that is
// not a trusted proxy. Hops right of it were appended by our own proxies;
// anything left of it was written by the client and may be forged, which
// is why Fiber's ProxyHeader (it takes the leftmost hop) is not used.
func (s *Server) ClientIP(c *fiber.Ctx) string {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	peer = peer.Unmap()
	if len(s.cfg.TrustedProxies) == 0 || !s.trustedProxy(peer) {
		return peer.String()
	}
	var hops [][]byte
	c.Request().Header.VisitAll(func(k, v []byte) {
		if bytes.EqualFold(k, []byte(fiber.HeaderXForwardedFor)) {
			hops = append(hops, bytes.Split(v, []byte{','})...)
		}
	})
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(bytes.TrimSpace(hops[i]))
		if !ok {
			// A hop our proxy did not write in a form we know: stop at
			// the last address we could trust rather than guess.
			break
		}
		client = a
		if !s.trustedProxy(a) {
			break
		}
	}
	return client.String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For element: an address, possibly with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(string(b)); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(string(b)); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
