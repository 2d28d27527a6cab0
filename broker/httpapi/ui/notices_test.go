package ui

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The notices page lists outstanding and overdue acknowledgements per
// partner, overdue partners first.
func TestNoticesPage(t *testing.T) {
	var now time.Time
	h := newHarness(t, func(d *Deps) {
		d.Notices = func(context.Context) ([]NoticeRow, error) {
			return []NoticeRow{
				{EventID: "evt_fresh", Partner: "cli_fresh", Type: "subject.erased", Created: now.Add(-time.Hour),
					Deadline: now.Add(time.Hour), Notified: now.Add(-time.Hour)},
				{EventID: "evt_courier", Partner: "cli_couriers", Type: "subject.corrected", Created: now.Add(-3 * time.Hour),
					Deadline: now.Add(-time.Hour)},
			}, nil
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
		"subject.corrected", "not yet", `aria-current="page">Notices`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Index(r.body, "Quick Couriers") > strings.Index(r.body, "Fresh Mart (retailer)") {
		t.Error("the overdue partner is not listed first")
	}
}
