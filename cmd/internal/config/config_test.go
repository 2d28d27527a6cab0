package config

import (
	"strings"
	"testing"
)

func TestDevelopmentDefaultsAreValid(t *testing.T) {
	c := FromEnv(func(string) string { return "" })
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.Server.Addr != "127.0.0.1:8080" || c.Server.Issuer != "http://127.0.0.1:8080" || !c.Keys.Create {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	env := map[string]string{
		"BROKER_ENV":               "production",
		"BROKER_ADDR":              "nonsense",
		"BROKER_ISSUER":            "ftp://x",
		"DATABASE_URL":             "mysql://x",
		"WHATSAPP_PHONE_NUMBER_ID": "abc",
		"BROKER_POLICY_DIR":        "/definitely/not/here",
	}
	c := FromEnv(func(k string) string { return env[k] })
	c.SetDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("bad production config accepted")
	}
	for _, want := range []string{"BROKER_ADDR", "BROKER_ISSUER", "DATABASE_URL", "BROKER_KEY_DIR",
		"WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "BROKER_POLICY_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("error should be one line: %q", err)
	}
}

func TestProductionRefusesDevSecretsAndCreatesNoKeys(t *testing.T) {
	env := map[string]string{"BROKER_ENV": "production", "BROKER_ISSUER": "https://broker.example",
		"DATABASE_URL": "postgres://db/x", "BROKER_KEY_DIR": "/keys", "WHATSAPP_APP_SECRET": "dev-app-secret",
		"WHATSAPP_VERIFY_TOKEN": "v", "WHATSAPP_ACCESS_TOKEN": "a", "WHATSAPP_API_BASE": "https://graph.example/v25.0",
		"WHATSAPP_PHONE_NUMBER_ID": "123"}
	c := FromEnv(func(k string) string { return env[k] })
	c.SetDefaults()
	if c.Keys.Create {
		t.Error("production must not create keys")
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "development WhatsApp secrets") {
		t.Fatalf("dev secret accepted in production: %v", err)
	}
}

func TestWebhookAllowAndPaymentLookup(t *testing.T) {
	prod := map[string]string{"BROKER_ENV": "production", "BROKER_ISSUER": "https://broker.example",
		"DATABASE_URL": "postgres://db/x", "BROKER_KEY_DIR": "/keys", "WHATSAPP_APP_SECRET": "s",
		"WHATSAPP_VERIFY_TOKEN": "v", "WHATSAPP_ACCESS_TOKEN": "a", "WHATSAPP_API_BASE": "https://graph.example/v25.0",
		"WHATSAPP_PHONE_NUMBER_ID": "123"}
	with := func(base map[string]string, kv ...string) Config {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		c := FromEnv(func(k string) string { return env[k] })
		c.SetDefaults()
		return c
	}
	for _, tt := range []struct {
		name string
		c    Config
		want string // "" valid, else part of the error
	}{
		{"production defaults", with(prod), ""},
		{"development defaults", with(nil), ""},
		{"allow loopback", with(nil, "BROKER_WEBHOOK_ALLOW", "127.0.0.0/8, ::1/128"), ""},
		{"allow junk", with(nil, "BROKER_WEBHOOK_ALLOW", "127.0.0.0/8,localhost,10.0.0.0/40"), "BROKER_WEBHOOK_ALLOW"},
		{"lookup on in development", with(nil, "BROKER_PAYMENT_LOOKUP", "on"), ""},
		{"lookup junk", with(nil, "BROKER_PAYMENT_LOOKUP", "yes"), "BROKER_PAYMENT_LOOKUP must be on or off"},
		{"lookup off in production", with(prod, "BROKER_PAYMENT_LOOKUP", "off"), "must be on in production"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
	if c := with(prod); c.WhatsApp.PaymentLookup != "on" || !c.WebhookGuard().HTTPSOnly {
		t.Errorf("production: lookup %q, https only %v", c.WhatsApp.PaymentLookup, c.WebhookGuard().HTTPSOnly)
	}
	if c := with(nil); c.WhatsApp.PaymentLookup != "off" || c.WebhookGuard().HTTPSOnly || len(c.WebhookGuard().Allow) != 0 {
		t.Errorf("development: lookup %q, guard %+v", c.WhatsApp.PaymentLookup, c.WebhookGuard())
	}
	allowed := with(nil, "BROKER_WEBHOOK_ALLOW", "127.0.0.0/8")
	if g := allowed.WebhookGuard(); len(g.Allow) != 1 || g.Allow[0].String() != "127.0.0.0/8" {
		t.Errorf("allow list %v", g.Allow)
	}
}
