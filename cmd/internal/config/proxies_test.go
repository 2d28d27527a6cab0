package config

import (
	"strings"
	"testing"
)

func TestTrustedProxies(t *testing.T) {
	tests := []struct {
		env     string
		want    string // the parsed prefixes, space-separated
		wantErr string
	}{
		{"", "", ""},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.0.0.0/8, 192.0.2.7 ,2001:db8::/32", "10.0.0.0/8 192.0.2.7/32 2001:db8::/32", ""},
		{"10.1.2.3/8", "10.0.0.0/8", ""}, // masked
		{"::ffff:192.0.2.7", "192.0.2.7/32", ""},
		{"10.0.0.0/8,proxy.example", "10.0.0.0/8", `not "proxy.example"`},
		{"10.0.0.0/33", "", `not "10.0.0.0/33"`},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			c := FromEnv(func(k string) string {
				if k == "BROKER_TRUSTED_PROXIES" {
					return tc.env
				}
				return ""
			})
			c.SetDefaults()
			c.Database.URL = "postgres://localhost/sieve"
			var got []string
			for _, p := range c.Server.TrustedProxyPrefixes() {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("prefixes %v, want %q", got, tc.want)
			}
			err := c.Validate()
			if (err != nil) != (tc.wantErr != "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
