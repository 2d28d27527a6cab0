package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// TestPartnerRegistry: partner create and update take the legal registry
// and service area flags (SPEC §2), refuse bad values with a usage error
// and no change, show them in partner list, and audit each change.
func TestPartnerRegistry(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	keys := t.TempDir()
	env := func(k string) string {
		switch k {
		case "DATABASE_URL":
			return dbURL
		case "BROKER_KEY_DIR":
			return keys
		case "SIEVE_OPERATOR":
			return "asha"
		}
		return ""
	}
	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, env)
		return code, out.String(), errb.String()
	}
	if code, _, e := ctl("migrate"); code != 0 {
		t.Fatalf("migrate: %s", e)
	}
	code, out, e := ctl("partner", "create", "--name", "Kirana A", "--kind", "retailer", "--scopes", "orders:read orders:write",
		"--role", "processor", "--agreement", "DPA-2026-04", "--agreement-expires", "2027-03-31", "--jurisdiction", "IN",
		"--transfer-basis", "none", "--serves", "560001 560002", "--location", "12.9716,77.5946", "--radius-km", "3",
		"--auto-accept", "--json")
	if code != 0 {
		t.Fatalf("create: exit %d %s", code, e)
	}
	var created map[string]string
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	id := created["client_id"]
	if code, _, e := ctl("partner", "create", "--name", "Legacy", "--kind", "logistics", "--scopes", "delivery:read"); code != 0 {
		t.Fatalf("create legacy: %s", e)
	}
	list := func() map[string]map[string]any {
		t.Helper()
		_, out, _ := ctl("partner", "list", "--json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("partner list: %v: %s", err, out)
		}
		m := map[string]map[string]any{}
		for _, r := range rows {
			m[r["name"].(string)] = r
		}
		return m
	}
	rows := list()
	a := rows["Kirana A"]
	for k, want := range map[string]any{"role": "processor", "agreement": "DPA-2026-04", "agreement_expires": "2027-03-31",
		"jurisdiction": "IN", "transfer_basis": "none", "location": "12.9716,77.5946", "radius_km": 3.0, "auto_accept": true} {
		if a[k] != want {
			t.Errorf("list %s = %v; want %v", k, a[k], want)
		}
	}
	if s, _ := json.Marshal(a["serves"]); string(s) != `["560001","560002"]` {
		t.Errorf("serves = %s", s)
	}
	if rows["Legacy"]["role"] != "legacy" {
		t.Errorf("a partner without a role is listed as %v; want legacy", rows["Legacy"]["role"])
	}
	if _, text, _ := ctl("partner", "list"); !strings.Contains(text, "DPA-2026-04 (to 2027-03-31)") || !strings.Contains(text, "560001 560002") {
		t.Errorf("partner list table lacks the registry:\n%s", text)
	}

	// Bad values: a usage error (exit 2) or a refusal, and no change.
	for _, args := range [][]string{
		{"--role", "owner"},
		{"--jurisdiction", "india"},
		{"--agreement-expires", "31/03/2027"},
		{"--transfer-basis", "trust-me"},
		{"--serves", "56OO01"},
		{"--location", "200,77"},
		{"--radius-km", "500"},
		{"--agreement", "a b"},
	} {
		if code, _, _ := ctl(append([]string{"partner", "update", id}, args...)...); code == 0 {
			t.Errorf("update %v: exit 0; want a refusal", args)
		}
	}
	if code, _, _ := ctl("partner", "create", "--name", "Courier", "--kind", "logistics", "--scopes", "delivery:read",
		"--serves", "560001"); code == 0 {
		t.Error("a service area on a logistics partner was accepted")
	}
	if code, _, _ := ctl("partner", "update", id, "--location", "", "--radius-km", "3"); code == 0 {
		t.Error("a radius without a location was accepted")
	}
	if got := list()["Kirana A"]; got["role"] != "processor" || got["location"] != "12.9716,77.5946" {
		t.Errorf("a refused update changed the partner: %v", got)
	}

	if code, out, e := ctl("partner", "update", id, "--role", "controller", "--agreement-expires", "2028-01-31",
		"--auto-accept=false", "--self-delivery"); code != 0 || !strings.Contains(out, "role") {
		t.Fatalf("update: exit %d %s %s", code, out, e)
	}
	a = list()["Kirana A"]
	if a["role"] != "controller" || a["agreement_expires"] != "2028-01-31" || a["auto_accept"] != nil || a["self_delivery"] != true ||
		a["agreement"] != "DPA-2026-04" {
		t.Errorf("after update: %v", a)
	}

	// Each change is an audit entry naming the operator and the flags.
	if code, _, e := ctl("audit", "checkpoint"); code != 0 {
		t.Fatalf("checkpoint: %s", e)
	}
	_, out, e = ctl("audit", "export", "--format", "jsonl")
	var n int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ent map[string]any
		if json.Unmarshal([]byte(line), &ent) != nil || ent["action"] != "partner update" {
			continue
		}
		n++
		if ent["actor"] != "officer:asha" || ent["resource"] != "partner:"+id {
			t.Errorf("audit entry %v", ent)
		}
	}
	if n != 2 {
		t.Errorf("%d partner update entries; want 2 (create, update): %s %s", n, out, e)
	}

	// The Art. 30 record lists the recipients from the registry, with what
	// the transfer rules say of each; no hard-coded "no transfers".
	_, out, _ = ctl("report", "processing", "--json")
	var rec struct {
		Transfers  string `json:"international_transfers"`
		Registered []struct {
			Name, Role, Agreement, Jurisdiction string
			TransferBasis                       string            `json:"transfer_basis"`
			AgreementValid                      bool              `json:"agreement_valid"`
			Transfers                           map[string]string `json:"transfers"`
		} `json:"registered_recipients"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rec.Registered {
		got[r.Name] = fmt.Sprintf("%s|%s|%s|%s|%v|%s|%s", r.Role, r.Agreement, r.Jurisdiction, r.TransferBasis, r.AgreementValid,
			r.Transfers["IN"], r.Transfers["EEA"])
	}
	if want := "controller|DPA-2026-04|IN|none|true|domestic|no_transfer_basis"; got["Kirana A"] != want {
		t.Errorf("Kirana A in the record: %q; want %q", got["Kirana A"], want)
	}
	if want := "controller (legacy)||IN|none|true|domestic|no_transfer_basis"; got["Legacy"] != want {
		t.Errorf("Legacy in the record: %q; want %q", got["Legacy"], want)
	}
	if !strings.Contains(rec.Transfers, "every registered recipient is in IN") {
		t.Errorf("transfers: %q", rec.Transfers)
	}
	if code, _, e := ctl("partner", "update", id, "--jurisdiction", "SG", "--transfer-basis", "scc"); code != 0 {
		t.Fatal(e)
	}
	_, text, _ := ctl("report", "processing")
	if !strings.Contains(text, "Kirana A (SG, scc)") || !strings.Contains(text, "Recipients (legal registry)") {
		t.Errorf("the record does not name the transfer to SG:\n%s", text)
	}
}

// TestDemoSeedStores: demo seed registers three marketplace stores in
// different Bengaluru postal codes, with service areas and different
// stock, and is idempotent.
func TestDemoSeedStores(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	keys := t.TempDir()
	creds := t.TempDir() + "/creds.json"
	env := func(k string) string {
		switch k {
		case "DATABASE_URL":
			return dbURL
		case "BROKER_KEY_DIR":
			return keys
		}
		return ""
	}
	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, env)
		return code, out.String(), errb.String()
	}
	if code, _, e := ctl("migrate"); code != 0 {
		t.Fatal(e)
	}
	// Without --market: the demo retailer and courier only (the e2e
	// suite's single-retailer demo); with it, the stores are added once.
	if code, out, e := ctl("demo", "seed", "--credentials", creds); code != 0 || strings.Contains(out, "stores") {
		t.Fatalf("demo seed: %s %s", out, e)
	}
	for range 2 {
		if code, _, e := ctl("demo", "seed", "--market", "--credentials", creds); code != 0 {
			t.Fatalf("demo seed --market: %s", e)
		}
	}
	_, out, _ := ctl("partner", "list", "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	areas := map[string]bool{}
	for _, r := range rows {
		if s, ok := r["serves"].([]any); ok && len(s) > 0 {
			areas[s[0].(string)] = true
		}
	}
	if len(areas) != 3 {
		t.Errorf("stores with areas in %v; want three postal codes (seeded once)", areas)
	}
	db, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var shelves int
	if err := db.QueryRow(context.Background(), `SELECT count(DISTINCT (n, total)) FROM (SELECT partner_id, count(*) n,
		sum(stock) total FROM store_stock GROUP BY partner_id) s`).Scan(&shelves); err != nil || shelves != 3 {
		t.Errorf("%d different shelves, %v; want 3", shelves, err)
	}
}
