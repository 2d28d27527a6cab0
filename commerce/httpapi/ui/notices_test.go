package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// The notices page lists outstanding and overdue acknowledgements per
// partner, overdue partners first.
func TestNoticesPage(t *testing.T) {
	var now time.Time
	h := newHarness(t, func(d *Deps) {
		d.Notices = func(_ context.Context, limit int) ([]commerce.Notice, error) {
			if limit < 2 {
				t.Errorf("asked for %d notices", limit)
			}
			sent := now.Add(-time.Hour)
			return []commerce.Notice{
				{ID: "evt_fresh", Partner: "cli_fresh", Type: "subject.erased", CreatedAt: now.Add(-time.Hour),
					Deadline: now.Add(time.Hour), NotifiedAt: &sent},
				{ID: "evt_courier", Partner: "cli_couriers", Type: "subject.corrected", CreatedAt: now.Add(-3 * time.Hour),
					Deadline: now.Add(-time.Hour)},
			}, nil
		}
		d.Holds = func(context.Context, int) ([]commerce.HeldCategory, error) {
			return []commerce.HeldCategory{{Pseudonym: "psn_held", Category: "invoice", Basis: "CGST Act 2017, s.36", HeldAt: now, Until: now.Add(2190 * 24 * time.Hour)}}, nil
		}
		d.Warnings = func(context.Context, int) ([]commerce.PendingErasure, error) {
			return []commerce.PendingErasure{{Pseudonym: "psn_warned", WarnedAt: now, EraseAfter: now.Add(48 * time.Hour)}}, nil
		}
	})
	now = h.clock.Now()
	sess, _ := h.login(testOfficer, testPassword)
	r := h.do("GET", "/ui/notices", nil, []*http.Cookie{sess}, nil)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for _, want := range []string{`id="notice-totals"><strong>2</strong> outstanding, <strong>1</strong> overdue`,
		"Quick Couriers (logistics)", "1 overdue: releases denied", "Fresh Mart (retailer)", "evt_fresh", "evt_courier",
		"subject.corrected", "not yet", `aria-current="page">Notices`, `id="holds"`, "CGST Act 2017, s.36", "psn_held",
		`id="warnings"`, "psn_warned"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Index(r.body, "Quick Couriers") > strings.Index(r.body, "Fresh Mart (retailer)") {
		t.Error("the overdue partner is not listed first")
	}
}

// An officer opens a held invoice through /ui for legal_obligation: the
// page shows it with its audit entry, the officer is the party.
func TestReleaseHeldPage(t *testing.T) {
	var asked broker.Party
	h := newHarness(t, func(d *Deps) {
		d.ReleaseHeld = func(_ context.Context, p broker.Party, id, purpose string) (commerce.Invoice, string, error) {
			asked = p
			if purpose != "legal_obligation" {
				return commerce.Invoice{}, "dec_no", broker.Errorf(broker.EDenied, "a held record is released only for purpose legal_obligation")
			}
			return commerce.Invoice{OrderID: id, Total: 77100, Lines: []commerce.CartLine{{SKU: "SKU-ATTA-5KG", Quantity: 2}}}, "dec_ok", nil
		}
	})
	sess, csrf := h.login(testOfficer, testPassword)
	form := url.Values{"csrf": {csrf}, "order_id": {"ord_aaaaaaaaaaaaaaaaaaaaaaaaaa"}, "purpose": {"legal_obligation"}}
	r := h.do("POST", "/ui/holds/release", form, []*http.Cookie{sess}, nil)
	if r.status != 200 || !strings.Contains(r.body, `id="decision">dec_ok<`) || !strings.Contains(r.body, "SKU-ATTA-5KG") ||
		!strings.Contains(r.body, `id="invoice-total">77100<`) {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if asked.Kind != broker.KindOfficer || asked.ID != "off_asha" {
		t.Errorf("released to %+v, want the officer", asked)
	}
	form.Set("purpose", "marketing")
	if r := h.do("POST", "/ui/holds/release", form, []*http.Cookie{sess}, nil); r.status != 403 {
		t.Errorf("another purpose answers %d, want 403", r.status)
	}
	form.Del("csrf")
	if r := h.do("POST", "/ui/holds/release", form, []*http.Cookie{sess}, nil); r.status/100 != 4 {
		t.Errorf("without the CSRF token: %d", r.status)
	}
}
