package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

// TestUnparsableNumbersAreReported: a value that does not parse used to
// become the default silently (BROKER_WORKERS=abc ran 8 workers). Each
// numeric or duration variable must be named by Validate instead, without
// echoing the value.
func TestUnparsableNumbersAreReported(t *testing.T) {
	bad := map[string]string{
		"BROKER_WORKERS":            "abc",
		"BROKER_DB_MAX_CONNS":       "32x",
		"BROKER_PARTNER_RATE":       "fast",
		"BROKER_SHUTDOWN_TIMEOUT":   "5 seconds",
		"BROKER_RETENTION_INTERVAL": "hourly",
	}
	for name, value := range bad {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{name: value}
			c := FromEnv(func(k string) string { return env[k] })
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("%s=%q accepted: %v", name, value, err)
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("the error echoes the value: %v", err)
			}
		})
	}
	// Every one at once, in one message.
	c := FromEnv(func(k string) string { return bad[k] })
	c.SetDefaults()
	err := c.Validate()
	for name := range bad {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("combined error does not name %s: %v", name, err)
		}
	}
	// Good values still parse, surrounding spaces included.
	good := map[string]string{"BROKER_WORKERS": " 4 ", "BROKER_DB_MAX_CONNS": "16", "BROKER_PARTNER_RATE": "2.5",
		"BROKER_SHUTDOWN_TIMEOUT": "3s", "BROKER_RETENTION_INTERVAL": "30m"}
	c = FromEnv(func(k string) string { return good[k] })
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("good values refused: %v", err)
	}
	if c.Workers.Workers != 4 || c.Database.MaxConns != 16 || c.Server.PartnerRate != 2.5 ||
		c.Server.ShutdownTimeout.String() != "3s" || c.Workers.RetentionInterval.String() != "30m0s" {
		t.Fatalf("good values misread: %+v", c)
	}
	// A negative count is out of range, not silently ignored.
	neg := map[string]string{"BROKER_DB_MAX_CONNS": "-1"}
	c = FromEnv(func(k string) string { return neg[k] })
	c.SetDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "BROKER_DB_MAX_CONNS") {
		t.Fatalf("negative BROKER_DB_MAX_CONNS accepted: %v", err)
	}
}

// TestLocalDatabaseURLAsksPgSh: each clone's cluster has its own port, so
// the development default comes from the clone's scripts/pg.sh, not from a
// fixed 55432; outside a clone (or in another project) it is the old
// default, and no foreign script runs.
func TestLocalDatabaseURLAsksPgSh(t *testing.T) {
	clone := t.TempDir()
	mustWrite := func(path, body string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	const want = "postgres://postgres@127.0.0.1:58123/sieve?sslmode=disable"
	mustWrite(filepath.Join(clone, "go.mod"), "module github.com/sieve-broker/sieve\n\ngo 1.26.0\n", 0o644)
	mustWrite(filepath.Join(clone, "scripts", "pg.sh"), "#!/bin/sh\n[ \"$1\" = url ] && echo '"+want+"'\n", 0o755)
	sub := filepath.Join(clone, "cmd", "brokerd")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	c := FromEnv(func(string) string { return "" })
	c.SetDefaults()
	if c.Database.URL != want {
		t.Fatalf("development database URL %q, want pg.sh's %q", c.Database.URL, want)
	}

	other := t.TempDir()
	marker := filepath.Join(other, "ran")
	mustWrite(filepath.Join(other, "go.mod"), "module example.com/other\n", 0o644)
	mustWrite(filepath.Join(other, "scripts", "pg.sh"), "#!/bin/sh\ntouch '"+marker+"'\necho postgres://evil/x\n", 0o755)
	t.Chdir(other)
	if got := LocalDatabaseURL(); got != DefaultLocalDatabaseURL {
		t.Fatalf("another project's pg.sh answered: %q", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("another project's scripts/pg.sh was run")
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

func TestWebhookAllowAndPaymentLookup(t *testing.T) {
	prod := map[string]string{"BROKER_ENV": "production", "SIEVE_DPO_CONTACT": "dpo@shop.example", "BROKER_ISSUER": "https://broker.example",
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
		{"no DPO contact in production", with(prod, "SIEVE_DPO_CONTACT", ""), "SIEVE_DPO_CONTACT is required"},
		{"DPO contact too long", with(nil, "SIEVE_DPO_CONTACT", strings.Repeat("x", 121)), "SIEVE_DPO_CONTACT must be one line"},
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

// The inactivity warning is never less than 48 hours (DPDP Rules 2025,
// Rule 8(2)); the notice deadline and refresh default when unset.
func TestErasureWarningAndNoticeDeadline(t *testing.T) {
	c := FromEnv(func(string) string { return "" })
	c.SetDefaults()
	if c.Workers.ErasureWarning != 48*time.Hour || c.Workers.NoticeDeadline != 72*time.Hour || c.Workers.NoticeRefresh != 10*time.Second {
		t.Errorf("defaults: warning %v, deadline %v, refresh %v", c.Workers.ErasureWarning, c.Workers.NoticeDeadline, c.Workers.NoticeRefresh)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	env := map[string]string{"BROKER_ERASURE_WARNING": "24h"}
	c = FromEnv(func(k string) string { return env[k] })
	c.SetDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "BROKER_ERASURE_WARNING must be at least 48h") {
		t.Errorf("a 24-hour warning: %v", err)
	}
	env = map[string]string{"BROKER_ERASURE_WARNING": "72h", "BROKER_NOTICE_DEADLINE": "168h"}
	c = FromEnv(func(k string) string { return env[k] })
	c.SetDefaults()
	if err := c.Validate(); err != nil || c.Workers.ErasureWarning != 72*time.Hour || c.Workers.NoticeDeadline != 168*time.Hour {
		t.Errorf("72h warning, 168h deadline: %v %v %v", err, c.Workers.ErasureWarning, c.Workers.NoticeDeadline)
	}
}

// TestEveryTypedVariableRefusesBadValues runs one table over every numeric,
// duration and on/off variable FromEnv reads: a value that does not parse,
// a zero or a negative value must each be named by Validate (never echoed),
// and a good value must pass. The table is checked against config.go, so a
// new typed variable without a row fails here.
func TestEveryTypedVariableRefusesBadValues(t *testing.T) {
	cases := []struct {
		name string
		bad  []string // each must be reported
		good string   // must be accepted
	}{
		{"BROKER_WORKERS", []string{"abc", "4.5", "-1", "65", "99999999999999999999"}, "4"},
		{"BROKER_DB_MAX_CONNS", []string{"32x", "-1", "10001"}, "16"},
		{"BROKER_PARTNER_RATE", []string{"fast", "NaN", "Inf", "-2"}, "2.5"},
		{"BROKER_SHUTDOWN_TIMEOUT", []string{"5 seconds", "5", "0", "-1s", "11s"}, "3s"},
		{"BROKER_READ_TIMEOUT", []string{"soon", "0s", "-1s", "6m"}, "30s"},
		{"BROKER_RETENTION_INTERVAL", []string{"hourly", "0", "-1m"}, "30m"},
		{"BROKER_NOTICE_DEADLINE", []string{"3 days", "0", "-1h"}, "72h"},
		{"BROKER_NOTICE_REFRESH", []string{"often", "0s", "-10s"}, "10s"},
		{"BROKER_ERASURE_WARNING", []string{"2d", "0", "-48h", "47h"}, "72h"},
		{"BROKER_OFFER_TTL", []string{"minute", "0", "-60s"}, "90s"},
		{"BROKER_KEY_ROTATION", []string{"weekly", "0d", "-7d", "0", "7x"}, "7d"},
		{"BROKER_BACKUP_RETENTION", []string{"month", "0d", "-30d"}, "30d"},
		{"BROKER_LOG_KEY_HANDOVER", []string{"week", "0", "-1h"}, "72h"},
		{"BROKER_JWT_PREPUBLISH", []string{"later", "0", "-10m"}, "30m"},
		{"SIEVE_GRIEVANCE_ACK", []string{"tomorrow", "0", "-1h", "49h"}, "24h"},
		{"SIEVE_GRIEVANCE_RESOLVE", []string{"month", "0d", "-1d", "31d"}, "15d"},
		{"BROKER_PAYMENT_LOOKUP", []string{"yes", "true", "1", "ON"}, "on"},
	}
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	typed := regexp.MustCompile(`(?:p\.(?:int|float|duration)\(|durationOrInvalid\(getenv\()"([A-Z_]+)"`)
	listed := map[string]bool{"BROKER_PAYMENT_LOOKUP": true} // on/off, read as a string
	for _, c := range cases {
		listed[c.name] = true
	}
	for _, m := range typed.FindAllStringSubmatch(string(src), -1) {
		if !listed[m[1]] {
			t.Errorf("%s is read as a number or duration but has no row here", m[1])
		}
		delete(listed, m[1])
	}
	delete(listed, "BROKER_PAYMENT_LOOKUP")
	for name := range listed {
		t.Errorf("row %s names no typed variable of config.go", name)
	}
	validate := func(env map[string]string) error {
		c := FromEnv(func(k string) string { return env[k] })
		c.SetDefaults()
		return c.Validate()
	}
	for _, c := range cases {
		for _, v := range c.bad {
			t.Run(c.name+"="+v, func(t *testing.T) {
				err := validate(map[string]string{c.name: v})
				if err == nil || !strings.Contains(err.Error(), c.name) {
					t.Fatalf("%s=%q accepted: %v", c.name, v, err)
				}
				// Numbers may sit beside a secret; only the on/off switch is quoted back.
				if c.name != "BROKER_PAYMENT_LOOKUP" && strings.Contains(err.Error(), strconv.Quote(v)) {
					t.Errorf("the error echoes the value: %v", err)
				}
			})
		}
		t.Run(c.name+"="+c.good, func(t *testing.T) {
			if err := validate(map[string]string{c.name: c.good}); err != nil {
				t.Fatalf("%s=%q refused: %v", c.name, c.good, err)
			}
		})
	}
}
