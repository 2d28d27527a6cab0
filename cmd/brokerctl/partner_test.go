package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// TestPartnerCreateWebhookGuard: partner create refuses webhook URLs that
// reach the broker's own network (the metadata address, loopback in its
// spellings, private ranges) unless BROKER_WEBHOOK_ALLOW names them, and
// http in production; a refused partner is not created.
func TestPartnerCreateWebhookGuard(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	keys := t.TempDir()
	env := func(extra map[string]string) func(string) string {
		return func(k string) string {
			switch k {
			case "DATABASE_URL":
				return dbURL
			case "BROKER_KEY_DIR":
				return keys
			}
			return extra[k]
		}
	}
	ctl := func(extra map[string]string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, env(extra))
		return code, out.String(), errb.String()
	}
	if code, _, e := ctl(nil, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", e)
	}
	create := func(extra map[string]string, url string) (int, string) {
		t.Helper()
		code, _, e := ctl(extra, "partner", "create", "--name", "Hook Mart", "--kind", "retailer",
			"--scopes", "orders:read", "--webhook", url, "--json")
		return code, e
	}
	for _, url := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://127.0.0.1:9000/hook",
		"http://localhost:9000/hook",
		"http://[::1]:9000/hook",
		"http://0.0.0.0:9000/hook",
		"http://[::ffff:127.0.0.1]:9000/hook",
		"https://10.0.0.8/hook",
		"https://100.64.0.1/hook",
		"http://2130706433/hook",
	} {
		code, e := create(nil, url)
		if code == 0 || !strings.Contains(e, "webhook") {
			t.Errorf("partner create --webhook %s: exit %d, %q: want a refusal naming the webhook", url, code, e)
		}
	}
	allow := map[string]string{"BROKER_WEBHOOK_ALLOW": "127.0.0.0/8"}
	if code, e := create(allow, "http://127.0.0.1:9000/hook"); code != 0 {
		t.Errorf("loopback allowed by BROKER_WEBHOOK_ALLOW: exit %d %s", code, e)
	}
	if code, e := create(allow, "http://169.254.169.254/"); code == 0 || !strings.Contains(e, "refused") {
		t.Errorf("metadata with loopback allowed: exit %d %q", code, e)
	}
	if code, e := create(map[string]string{"BROKER_WEBHOOK_ALLOW": "127.0.0.0/8,not-a-cidr"}, "http://127.0.0.1:9000/hook"); code == 0 ||
		!strings.Contains(e, "BROKER_WEBHOOK_ALLOW") {
		t.Errorf("a bad BROKER_WEBHOOK_ALLOW: exit %d %q", code, e)
	}
	list := func() []map[string]any {
		t.Helper()
		_, out, _ := ctl(nil, "partner", "list", "--json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("partner list: %v: %s", err, out)
		}
		return rows
	}
	rows := list()
	if len(rows) != 1 {
		t.Fatalf("%d partners created, want only the allowed one: %v", len(rows), rows)
	}
	id := rows[0]["client_id"].(string)

	// partner update checks the new URL the same way, and changes nothing
	// when it refuses.
	for _, url := range []string{"http://169.254.169.254/", "http://localhost:9000/hook", "https://192.168.1.10/hook", "ftp://8.8.8.8/"} {
		if code, _, e := ctl(nil, "partner", "update", id, "--webhook", url); code == 0 || !strings.Contains(e, "webhook") {
			t.Errorf("partner update --webhook %s: exit %d %q", url, code, e)
		}
	}
	if got := list()[0]["webhook"]; got != "http://127.0.0.1:9000/hook" {
		t.Errorf("a refused update changed the webhook to %v", got)
	}
	if code, _, e := ctl(nil, "partner", "update", id, "--webhook", "https://8.8.8.8/sieve"); code != 0 {
		t.Fatalf("update to a public address: exit %d %s", code, e)
	}
	if got := list()[0]["webhook"]; got != "https://8.8.8.8/sieve" {
		t.Errorf("webhook %v after the update", got)
	}
	if code, _, e := ctl(nil, "partner", "update", id, "--no-webhook"); code != 0 {
		t.Fatalf("--no-webhook: exit %d %s", code, e)
	}
	if got, ok := list()[0]["webhook"]; ok {
		t.Errorf("webhook %v after --no-webhook", got)
	}
	if code, _, _ := ctl(nil, "partner", "update", id); code != 2 {
		t.Errorf("update without a flag: exit %d, want 2 (usage)", code)
	}
}
