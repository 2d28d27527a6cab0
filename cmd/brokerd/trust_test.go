package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/token"
)

// uiOfficer signs an officer in to the dashboard at base and returns the
// client holding the session.
func uiOfficer(t *testing.T, base, name, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := uiGet(t, c, base+"/ui/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the sign-in page")
	}
	resp, err := c.PostForm(base+"/ui/login", url.Values{"csrf": {m[1]}, "name": {name}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	return c
}

func uiGet(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue reads one unlabelled gauge from /metrics; -1 when absent.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	body := uiGet(t, http.DefaultClient, base+"/metrics")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestRestoredBackupShowsTampering is the truncation a restored backup
// makes: brokerd keeps the last checkpoint it verified outside the
// database, so a brokerd started on an older dump (real pg_dump and
// pg_restore) of the same log shows the tampering on /ui and in the metric
// at its first check, although the restored log is consistent in itself.
func TestRestoredBackupShowsTampering(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sys := h.m.Sys
	hash, err := token.HashSecret("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.DB.Officers().Create(ctx, broker.Officer{ID: "off_aud", Name: "auditor", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.DB.Pool.Exec(ctx, `UPDATE officers SET password_temporary = false`); err != nil {
		t.Fatal(err)
	}
	appendN := func(n int) {
		t.Helper()
		for range n {
			if err := sys.DB.Audit().Append(ctx, audit.Entry{Time: time.Now(), DecisionID: broker.NewID("dec"),
				Actor: "retailer:cli_fresh", Action: "release", Purpose: "order_fulfilment", Subject: "sub_A",
				Resource: "order", Released: []string{"order.id"}, Outcome: audit.OutcomeReleased, PolicyRevision: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sys.IntegrateAudit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	appendN(5)
	backup := pgtest.Dump(t, h.m.Config.Database.URL)
	appendN(4)

	// The officer's view verifies the log and keeps the checkpoint.
	officer := uiOfficer(t, h.base, "auditor", "correct horse battery staple")
	if page := uiGet(t, officer, h.base+"/ui/overview"); !strings.Contains(page, "✓ verified") {
		t.Fatalf("the untouched log does not verify on /ui:\n%s", page)
	}
	trusted := sys.TrustedCheckpointPath()
	note, err := os.ReadFile(trusted)
	if err != nil {
		t.Fatalf("no trusted checkpoint kept: %v", err)
	}
	cp, err := sys.CurrentCheckpointKey().VerifyCheckpoint(note)
	if err != nil || cp.Size < 9 {
		t.Fatalf("the kept checkpoint: %+v, %v", cp, err)
	}
	if v := metricValue(t, h.base, "sieve_audit_trusted_checkpoint_mismatch"); v != 0 {
		t.Fatalf("mismatch gauge on the untouched log = %v", v)
	}

	// The operator restores the older backup and starts brokerd on it,
	// with the same key directory.
	cfg := h.m.Config
	cfg.Database.URL = pgtest.Restore(t, backup)
	cfg.Server.Addr = "127.0.0.1:0"
	m := &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		m.Close(ctx) //nolint:errcheck
	})
	base := "http://" + m.Addr()
	if _, _, err := m.Sys.VerifyAudit(ctx, nil); err != nil {
		t.Fatalf("the restored log is consistent in itself, verify should pass: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, base, "sieve_audit_trusted_checkpoint_mismatch") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the mismatch gauge never went to 1 on the restored database")
		}
		time.Sleep(50 * time.Millisecond)
	}
	page := uiGet(t, uiOfficer(t, base, "auditor", "correct horse battery staple"), base+"/ui/overview")
	// The first brokerd may have kept a later checkpoint than the one read
	// above (the officer's sign-in is itself an entry): the page names the
	// size it compared with, at least that one's.
	shrank := regexp.MustCompile(`shrank from (\d+) to (\d+) entries`).FindStringSubmatch(page)
	if !strings.Contains(page, "✗ verification failed") || !strings.Contains(page, "(tampering)") || shrank == nil {
		t.Fatalf("/ui on the restored database does not show the tampering:\n%s", page)
	}
	if from, _ := strconv.ParseUint(shrank[1], 10, 64); from < cp.Size {
		t.Fatalf("the page compares with a checkpoint of %d entries, older than the kept one of %d", from, cp.Size)
	}
	// The kept checkpoint is not replaced by the shorter log's.
	after, err := os.ReadFile(trusted)
	if err != nil {
		t.Fatal(err)
	}
	if kept, err := sys.CurrentCheckpointKey().VerifyCheckpoint(after); err != nil || kept.Size < cp.Size {
		t.Fatalf("the restored log's checkpoint replaced the trusted one: %+v %v", kept, err)
	}
}
