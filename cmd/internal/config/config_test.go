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

func TestKeyRotationAndBackupRetention(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		rotation, retention string
		wantRot, wantRet    time.Duration
		bad                 []string
	}{
		{wantRot: 7 * day, wantRet: 30 * day},
		{rotation: "1d", retention: "90d", wantRot: day, wantRet: 90 * day},
		{rotation: "36h", retention: "720h", wantRot: 36 * time.Hour, wantRet: 30 * day},
		{rotation: "0d", retention: "-3d", bad: []string{"BROKER_KEY_ROTATION", "BROKER_BACKUP_RETENTION"}},
		{rotation: "weekly", retention: "0", bad: []string{"BROKER_KEY_ROTATION", "BROKER_BACKUP_RETENTION"}},
	} {
		env := map[string]string{"BROKER_KEY_ROTATION": tc.rotation, "BROKER_BACKUP_RETENTION": tc.retention}
		c := FromEnv(func(k string) string { return env[k] })
		c.SetDefaults()
		err := c.Validate()
		if len(tc.bad) == 0 {
			if err != nil || c.Keys.Rotation != tc.wantRot || c.Keys.BackupRetention != tc.wantRet {
				t.Errorf("%q/%q: rotation %s, retention %s, %v", tc.rotation, tc.retention, c.Keys.Rotation, c.Keys.BackupRetention, err)
			}
			continue
		}
		for _, want := range tc.bad {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%q/%q: error %v does not name %s", tc.rotation, tc.retention, err, want)
			}
		}
	}
}
