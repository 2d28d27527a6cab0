package policies_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/policies"
)

func TestProcessingRecord(t *testing.T) {
	e, err := policies.Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := e.Data()
	now := time.Date(2026, 6, 1, 10, 30, 15, 999, time.FixedZone("IST", 19800))
	base := policies.RecordInput{Now: now, Revision: "rev1", Controller: "Shop (controller)", Home: "IN"}
	rec := d.ProcessingRecord(base)
	if rec.PolicyRevision != "rev1" || rec.Controller != "Shop (controller)" ||
		!rec.GeneratedAt.Equal(now.Truncate(time.Second)) || rec.GeneratedAt.Location() != time.UTC {
		t.Errorf("header %q %q %v", rec.PolicyRevision, rec.Controller, rec.GeneratedAt)
	}
	var names []string
	for _, a := range rec.Activities {
		names = append(names, a.Purpose)
		if a.LawfulBasis == "" || len(a.Recipients) == 0 {
			t.Errorf("activity %s: basis %q, %d recipients", a.Purpose, a.LawfulBasis, len(a.Recipients))
		}
		if !slices.IsSorted(a.DataCategories) {
			t.Errorf("activity %s: categories not sorted: %v", a.Purpose, a.DataCategories)
		}
	}
	for _, p := range d.PurposeNames() {
		if !slices.Contains(names, string(p)) {
			t.Errorf("purpose %s has no activity", p)
		}
	}
	if len(rec.Retention) != len(d.Retention) ||
		!slices.IsSortedFunc(rec.Retention, func(a, b policies.RetentionRow) int { return strings.Compare(a.Category, b.Category) }) {
		t.Errorf("retention rows %v", rec.Retention)
	}
	if rec.Registered != nil || !strings.HasPrefix(rec.Transfers, "unknown") {
		t.Errorf("registry not read: Registered %v, Transfers %q; want none and unknown", rec.Registered, rec.Transfers)
	}

	today := now.UTC().Format(time.DateOnly)
	tests := []struct {
		name    string
		partner broker.Partner
		check   func(t *testing.T, r policies.RegisteredRecipient, transfers string)
		absent  bool
	}{
		{name: "a legacy partner is a domestic controller",
			partner: broker.Partner{ID: "cli_a", Name: "Mart", Kind: broker.KindRetailer},
			check: func(t *testing.T, r policies.RegisteredRecipient, transfers string) {
				if r.Role != broker.RoleController+" (legacy)" || !r.AgreementValid || r.Jurisdiction != "IN" ||
					r.TransferBasis != "none" || r.Transfers["IN"] != "domestic" {
					t.Errorf("%+v", r)
				}
				if !strings.HasPrefix(transfers, "none: every registered recipient is in IN") {
					t.Errorf("transfers %q", transfers)
				}
			}},
		{name: "a processor without an agreement is not valid",
			partner: broker.Partner{ID: "cli_b", Name: "Courier", Kind: broker.KindRetailer,
				Legal: broker.PartyLegal{Role: broker.RoleProcessor, Jurisdiction: "IN"}},
			check: func(t *testing.T, r policies.RegisteredRecipient, _ string) {
				if r.AgreementValid || r.Role != broker.RoleProcessor {
					t.Errorf("%+v", r)
				}
			}},
		{name: "a processor whose agreement expired is not valid",
			partner: broker.Partner{ID: "cli_c", Name: "Courier", Kind: broker.KindRetailer,
				Legal: broker.PartyLegal{Role: broker.RoleProcessor, Jurisdiction: "IN", Agreement: "DPA-1",
					AgreementExpires: "2026-05-31"}},
			check: func(t *testing.T, r policies.RegisteredRecipient, _ string) {
				if r.AgreementValid {
					t.Errorf("expired 2026-05-31, today %s: valid", today)
				}
			}},
		{name: "a processor whose agreement ends today is valid",
			partner: broker.Partner{ID: "cli_d", Name: "Courier", Kind: broker.KindRetailer,
				Legal: broker.PartyLegal{Role: broker.RoleProcessor, Jurisdiction: "IN", Agreement: "DPA-1",
					AgreementExpires: today}},
			check: func(t *testing.T, r policies.RegisteredRecipient, _ string) {
				if !r.AgreementValid {
					t.Errorf("agreement until %s, today %s: not valid", r.AgreementExpires, today)
				}
			}},
		{name: "a recipient abroad is an international transfer",
			partner: broker.Partner{ID: "cli_e", Name: "EuroShip", Kind: broker.KindRetailer,
				Legal: broker.PartyLegal{Role: broker.RoleController, Jurisdiction: "DE"}},
			check: func(t *testing.T, r policies.RegisteredRecipient, transfers string) {
				if r.Transfers["EEA"] != "domestic" || r.Transfers["IN"] == "domestic" || r.Transfers["IN"] == "" {
					t.Errorf("transfers %v", r.Transfers)
				}
				if !strings.Contains(transfers, "outside IN: EuroShip (DE, none)") {
					t.Errorf("summary %q", transfers)
				}
			}},
		{name: "a disabled partner is left out",
			partner: broker.Partner{ID: "cli_f", Name: "Gone", Kind: broker.KindRetailer, Disabled: true},
			absent:  true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.Partners, in.RegistryRead = []broker.Partner{tt.partner}, true
			rec := d.ProcessingRecord(in)
			if tt.absent {
				if len(rec.Registered) != 0 {
					t.Fatalf("registered %v, want none", rec.Registered)
				}
				return
			}
			if len(rec.Registered) != 1 || rec.Registered[0].ClientID != tt.partner.ID {
				t.Fatalf("registered %v", rec.Registered)
			}
			tt.check(t, rec.Registered[0], rec.Transfers)
		})
	}
}
