package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// brokerctl runs the CLI against a fresh database and key directory and
// returns its exit code, stdout and stderr.
type ctl func(args ...string) (int, string, string)

func newCtl(t *testing.T) ctl {
	env := map[string]string{"DATABASE_URL": pgtest.NewURL(t), "BROKER_KEY_DIR": t.TempDir()}
	return func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
		return code, out.String(), errb.String()
	}
}

// TestPartnerKindsAndCouriers: audit:read and subjects:write only for kind
// compliance; a retailer's default courier must be a logistics partner
// (issue 16 items 2 and 5).
func TestPartnerKindsAndCouriers(t *testing.T) {
	run := newCtl(t)
	for _, kind := range []string{"retailer", "logistics", "payments", "analytics"} {
		for _, scope := range []string{"audit:read", "subjects:write", "orders:read audit:read"} {
			if code, _, stderr := run("partner", "create", "--name", "X", "--kind", kind, "--scopes", scope); code == 0 ||
				!strings.Contains(stderr, "only for partners of kind compliance") {
				t.Errorf("%s with %q: exit %d, %q", kind, scope, code, stderr)
			}
		}
	}
	if code, _, stderr := run("partner", "create", "--name", "DPO desk", "--kind", "compliance", "--scopes", "audit:read subjects:write"); code != 0 {
		t.Fatalf("compliance client: exit %d: %s", code, stderr)
	}
	created := func(args ...string) string {
		t.Helper()
		code, out, stderr := run(append([]string{"partner", "create", "--json"}, args...)...)
		var c struct {
			ClientID string `json:"client_id"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("partner create %v: exit %d: %s", args, code, stderr)
		}
		return c.ClientID
	}
	courier := created("--name", "Swift", "--kind", "logistics", "--scopes", "delivery:read")
	shop := created("--name", "Shop", "--kind", "retailer", "--scopes", "orders:read")
	created("--name", "Fresh Mart", "--kind", "retailer", "--store", "101", "--scopes", "orders:read", "--courier", courier)
	for _, bad := range []string{shop, "cli_nobody"} {
		if code, _, _ := run("partner", "create", "--name", "Bad", "--kind", "retailer", "--store", "102", "--scopes", "orders:read", "--courier", bad); code == 0 {
			t.Errorf("--courier %s accepted", bad)
		}
	}
	if code, out, _ := run("partner", "list", "--json"); code != 0 || strings.Contains(out, `"Bad"`) {
		t.Errorf("a refused create left a partner behind: %s", out)
	}
	if code, _, _ := run("partner", "create", "--name", "C", "--kind", "logistics", "--scopes", "delivery:read", "--courier", courier); code != 2 {
		t.Errorf("--courier on a courier: exit %d, want 2", code)
	}
	if code, _, stderr := run("partner", "courier", shop, "--courier", courier); code != 0 {
		t.Errorf("partner courier: exit %d: %s", code, stderr)
	}
	if code, _, _ := run("partner", "courier", courier, "--courier", courier); code == 0 {
		t.Error("a courier given a default courier")
	}
	if code, _, _ := run("partner", "courier", shop, "--none"); code != 0 {
		t.Error("partner courier --none failed")
	}
}

// TestSubjectEraseReasonIsACode: --reason takes a code from a fixed list;
// anything else is a usage error before anything is touched (issue 16
// item 4).
func TestSubjectEraseReasonIsACode(t *testing.T) {
	run := newCtl(t)
	for _, reason := range []string{"Ravi Kumar +919800000001", "asked by phone", "REQUEST", "request "} {
		code, _, stderr := run("subject", "erase", "--wa-id", "919800000001", "--reason", reason)
		if code != 2 || !strings.Contains(stderr, "--reason must be one of") || strings.Contains(stderr, "Ravi") {
			t.Errorf("reason %q: exit %d, %q", reason, code, stderr)
		}
	}
	// A valid code goes on to look the shopper up (there is none here).
	if code, _, stderr := run("subject", "erase", "--wa-id", "919800000001", "--reason", "legal_order"); code != 1 || strings.Contains(stderr, "--reason") {
		t.Errorf("reason legal_order: exit %d, %q", code, stderr)
	}
}
