package partnerhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrAddressRefused means a webhook would reach an address that is not on
// the public internet (loopback, private, link-local, …) and that
// BROKER_WEBHOOK_ALLOW does not name. Delivery and registration both stop.
var ErrAddressRefused = errors.New("webhook address refused: not a public address and not in BROKER_WEBHOOK_ALLOW")

// ErrInsecureURL means a webhook URL is http where only https is accepted
// (BROKER_ENV=production).
var ErrInsecureURL = errors.New("webhook URL must be https in production")

// blocked are the ranges a webhook may not reach unless allowed: everything
// that is not a unicast address on the public internet. IPv4-mapped IPv6
// addresses are unmapped before the check, so [::ffff:127.0.0.1] is
// 127.0.0.1; the translation prefixes (NAT64, 6to4, Teredo) are refused
// whole, since they can carry any IPv4 address, internal ones included.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"; 0.0.0.0 dials the local host
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
		"::/96",           // unspecified, loopback, IPv4-compatible
		"::ffff:0:0/96",   // IPv4-mapped (only if unmapping failed)
		"64:ff9b::/96",    // NAT64
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard-only
		"2001::/32",       // Teredo
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4
		"fc00::/7",        // unique local (private)
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Guard decides which addresses and URLs partner webhooks may use. The
// zero Guard refuses every non-public address and accepts http and https.
type Guard struct {
	// Allow names ranges that may be reached although they are not public
	// (BROKER_WEBHOOK_ALLOW), e.g. 127.0.0.0/8 for a local demo.
	Allow []netip.Prefix
	// HTTPSOnly refuses http URLs (BROKER_ENV=production).
	HTTPSOnly bool
	// Resolver resolves host names at registration; net.DefaultResolver
	// when nil.
	Resolver *net.Resolver
}

// ParseAllow parses BROKER_WEBHOOK_ALLOW: CIDR prefixes (or single
// addresses) separated by commas, blanks ignored. It reports every bad
// value at once.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var bad []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil && a.Zone() == "" {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		bad = append(bad, fmt.Sprintf("%q", f))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not a CIDR prefix: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

// Public reports whether a is a unicast address on the public internet:
// none of the loopback, private, link-local, unspecified, multicast,
// carrier-grade NAT, documentation or translation ranges.
func Public(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// AllowedAddr reports whether a webhook may connect to a: a public
// address, or one in the allow list (checked as given and unmapped).
func (g *Guard) AllowedAddr(a netip.Addr) bool {
	a = a.WithZone("")
	if Public(a) {
		return true
	}
	for _, p := range g.Allow {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// CheckURL refuses a webhook URL whose scheme is not accepted or whose
// host resolves to any address the guard refuses. It runs when a partner's
// URL is registered; the dialer checks again at every delivery.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return errors.New("webhook must be an absolute http or https URL with a host")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && g.HTTPSOnly:
		return ErrInsecureURL
	case u.Scheme == "http":
	default:
		return errors.New("webhook must be an absolute http or https URL")
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if !g.AllowedAddr(a) {
			return fmt.Errorf("webhook host %s: %w", host, ErrAddressRefused)
		}
		return nil
	}
	if !dnsName(host) {
		// "2130706433", "0x7f.1", "0177.0.0.1": numbers some resolvers
		// read as addresses. A real host name has a non-numeric last label.
		return fmt.Errorf("webhook host %q is neither an IP address nor a DNS name", host)
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("webhook host %q does not resolve", host)
	}
	for _, a := range addrs {
		if !g.AllowedAddr(a) {
			return fmt.Errorf("webhook host %q resolves to %s: %w", host, a.Unmap(), ErrAddressRefused)
		}
	}
	return nil
}

// dnsName reports whether host is shaped like a DNS name: labels of
// letters, digits and hyphens (underscores tolerated), the last not all
// digits and not a hex number.
func dnsName(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := strings.ToLower(labels[len(labels)-1])
	if strings.Trim(last, "0123456789") == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") && strings.Trim(last[2:], "0123456789abcdef") == "" {
		return false
	}
	return true
}

// Control is a net.Dialer Control hook: it refuses the connection unless
// the address about to be connected to — after DNS, so a name that
// resolves to an internal address at delivery time is caught — is allowed.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook dial %s: %w", network, ErrAddressRefused)
	}
	if !g.AllowedAddr(ap.Addr()) {
		return ErrAddressRefused
	}
	return nil
}
