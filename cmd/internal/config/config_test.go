package config

import (
	"strings"
	"testing"
	"time"
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

func TestKeyDurationsAndTrustedCheckpoint(t *testing.T) {
	c := FromEnv(func(k string) string {
		return map[string]string{"BROKER_KEY_DIR": "/keys", "BROKER_LOG_KEY_HANDOVER": "3d", "BROKER_JWT_PREPUBLISH": "15m"}[k]
	})
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Keys.LogKeyHandover != 72*time.Hour || c.Keys.JWTPrepublish != 15*time.Minute ||
		c.Keys.TrustedCheckpoint != "/keys/trusted-checkpoint" {
		t.Fatalf("keys = %+v", c.Keys)
	}
	d := FromEnv(func(string) string { return "" })
	d.SetDefaults()
	if d.Keys.LogKeyHandover != 7*24*time.Hour || d.Keys.JWTPrepublish <= JWKSMaxAge {
		t.Fatalf("defaults = %+v", d.Keys)
	}
	bad := FromEnv(func(k string) string {
		return map[string]string{"BROKER_ENV": "production", "BROKER_LOG_KEY_HANDOVER": "soon", "BROKER_JWT_PREPUBLISH": "1m",
			"BROKER_TRUSTED_CHECKPOINT": "/elsewhere/cp"}[k]
	})
	bad.SetDefaults()
	err := bad.Validate()
	for _, want := range []string{"BROKER_LOG_KEY_HANDOVER", "BROKER_JWT_PREPUBLISH must be longer than the JWKS max-age"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if bad.Keys.TrustedCheckpoint != "/elsewhere/cp" {
		t.Errorf("BROKER_TRUSTED_CHECKPOINT = %q", bad.Keys.TrustedCheckpoint)
	}
}
