package config

import (
	"strings"
	"testing"
	"time"
)

// The grievance timers may be quicker than the law's, never slower; the
// contact has a development default and is required in production.
func TestDeskConfig(t *testing.T) {
	cfg := func(env map[string]string) Config {
		c := FromEnv(func(k string) string { return env[k] })
		c.SetDefaults()
		return c
	}
	c := cfg(nil)
	if c.Desk.Contact == "" || c.Desk.AckWithin != 48*time.Hour || c.Desk.ResolveWithin != 30*24*time.Hour {
		t.Errorf("development defaults: %+v", c.Desk)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"quicker timers", map[string]string{"SIEVE_GRIEVANCE_ACK": "24h", "SIEVE_GRIEVANCE_RESOLVE": "15d"}, ""},
		{"ack too long", map[string]string{"SIEVE_GRIEVANCE_ACK": "72h"}, "SIEVE_GRIEVANCE_ACK"},
		{"resolve too long", map[string]string{"SIEVE_GRIEVANCE_RESOLVE": "90d"}, "SIEVE_GRIEVANCE_RESOLVE"},
		{"resolve junk", map[string]string{"SIEVE_GRIEVANCE_RESOLVE": "soon"}, "SIEVE_GRIEVANCE_RESOLVE"},
		{"production without contact", map[string]string{"BROKER_ENV": "production"}, "SIEVE_DPO_CONTACT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg(tt.env)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
