package httpapi_test

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker/httpapi"
)

// TestClientIP serves ClientIP (and Fiber's Protocol) on a real loopback
// listener: the peer is 127.0.0.1, trusted or not as each case says.
func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		xff     []string // X-Forwarded-For headers, in order
		proto   string   // X-Forwarded-Proto
		want    string
		wantPro string
	}{
		{name: "no proxies: the peer", xff: []string{"203.0.113.9"}, want: "127.0.0.1"},
		{name: "untrusted peer: the header is ignored", trusted: []string{"10.0.0.0/8"}, xff: []string{"203.0.113.9"}, want: "127.0.0.1"},
		{name: "trusted peer without the header", trusted: []string{"127.0.0.1/32"}, want: "127.0.0.1"},
		{name: "trusted peer: the hop it appended", trusted: []string{"127.0.0.1/32"}, xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "a forged hop left of the real one", trusted: []string{"127.0.0.1/32"}, xff: []string{"198.51.100.7, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "a chain of trusted proxies", trusted: []string{"127.0.0.1/32", "10.0.0.0/8"},
			xff: []string{"198.51.100.7, 203.0.113.9, 10.1.2.3"}, want: "203.0.113.9"},
		{name: "header lines in order", trusted: []string{"127.0.0.0/8"}, xff: []string{"198.51.100.7", "203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv6 with a port", trusted: []string{"127.0.0.1/32"}, xff: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{name: "IPv4 with a port", trusted: []string{"127.0.0.1/32"}, xff: []string{"203.0.113.9:5000"}, want: "203.0.113.9"},
		{name: "garbage: the last address trusted", trusted: []string{"127.0.0.1/32"}, xff: []string{"<script>"}, want: "127.0.0.1"},
		{name: "garbage left of a real hop", trusted: []string{"127.0.0.1/32", "10.0.0.0/8"}, xff: []string{"junk, 10.0.0.5"}, want: "10.0.0.5"},
		{name: "every hop trusted: the leftmost", trusted: []string{"127.0.0.1/32", "10.0.0.0/8"}, xff: []string{"10.0.0.1, 10.0.0.2"}, want: "10.0.0.1"},
		{name: "X-Forwarded-Proto from anyone is ignored", proto: "https", want: "127.0.0.1", wantPro: "http"},
		{name: "X-Forwarded-Proto from a trusted proxy", trusted: []string{"127.0.0.1/32"}, proto: "https", want: "127.0.0.1", wantPro: "https"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg httpapi.Config
			for _, p := range tc.trusted {
				cfg.TrustedProxies = append(cfg.TrustedProxies, netip.MustParsePrefix(p))
			}
			srv := httpapi.New(cfg, httpapi.Deps{UI: func(app *fiber.App, s *httpapi.Server) {
				app.Get("/ip", func(c *fiber.Ctx) error { return c.SendString(s.ClientIP(c) + " " + c.Protocol()) })
			}})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.App.Listener(ln)                  //nolint:errcheck
			t.Cleanup(func() { srv.App.Shutdown() }) //nolint:errcheck
			req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/ip", nil)
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := tc.want + " " + map[bool]string{true: tc.wantPro, false: "http"}[tc.wantPro != ""]
			if string(b) != want {
				t.Errorf("got %q, want %q", b, want)
			}
		})
	}
}
