package policies

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sieve-broker/sieve/broker"
)

// TestRestrictedCountryForAnIndianShopper: once policy data names a country
// under DPDP §16, a recipient there gets nothing of an Indian shopper's data
// (reason restricted_country), whatever its transfer basis, while the same
// recipient still serves a shopper elsewhere; the default list is empty.
func TestRestrictedCountryForAnIndianShopper(t *testing.T) {
	ctx := context.Background()
	in := broker.PolicyInput{
		Party: broker.PolicyParty{ID: "p1", Kind: broker.KindRetailer, Role: broker.RoleController,
			Jurisdiction: "XK", TransferBasis: "scc"},
		Purpose: broker.PurposeOrderFulfilment, Scopes: []string{"orders:read"},
		Consent: broker.Consent{Notice: true}, State: "placed", Fields: []string{"order.id", "items"},
		Subject: broker.PolicySubject{Jurisdiction: "IN"}, Today: "2026-12-04",
	}
	if d, err := engine(t).Evaluate(ctx, in); err != nil || !d.Allow {
		t.Fatalf("default policy: %+v, %v; want allowed (no country is restricted by default)", d, err)
	}

	dir := t.TempDir()
	if err := os.CopyFS(dir, FS()); err != nil {
		t.Fatal(err)
	}
	data := editData(t, func(d map[string]any) {
		dig(d, "transfers")["dpdp_restricted"] = []any{"XK"}
	})
	if err := os.WriteFile(filepath.Join(dir, "sieve", "data.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Evaluate(ctx, in)
	if err != nil || d.Allow || d.Reason != "restricted_country" {
		t.Fatalf("restricted: %+v, %v; want denied, restricted_country", d, err)
	}
	for f, r := range d.Fields {
		if r.Allow || r.Reason != "restricted_country" {
			t.Errorf("%s: %+v; want withheld for restricted_country", f, r)
		}
	}
	if ok, reason := e.Data().TransferAllowed("IN", "XK", "scc"); ok || reason != "restricted_country" {
		t.Errorf("Data.TransferAllowed = %v, %q; want the Rego answer", ok, reason)
	}
	in.Subject.Jurisdiction = "SG"
	if d, err := e.Evaluate(ctx, in); err != nil || !d.Allow {
		t.Errorf("a Singapore shopper: %+v, %v; want allowed (DPDP §16 binds Indian data only)", d, err)
	}
}
