package commerce

import (
	"slices"
	"testing"
	"time"
)

func TestComplaintWord(t *testing.T) {
	for _, tt := range []struct {
		in   string
		ok   bool
		rest string
	}{
		{"complaint", true, ""},
		{"Complaint the milk was sour", true, "the milk was sour"},
		{"complaint: late again", true, "late again"},
		{"  grievance   rude rider ", true, "rude rider"},
		{"complain", true, ""},
		{"complaints department", false, ""},
		{"my complaint is", false, ""},
		{"", false, ""},
	} {
		ok, rest := complaintWord(tt.in)
		if ok != tt.ok || rest != tt.rest {
			t.Errorf("complaintWord(%q) = %v %q, want %v %q", tt.in, ok, rest, tt.ok, tt.rest)
		}
	}
}

func TestScopeOf(t *testing.T) {
	groups := []ReleaseGroup{
		{Subject: "sub_a", Actor: "retailer:r1", Released: `["customer.ref","delivery.address","items"]`, Count: 2},
		{Subject: "sub_b", Actor: "logistics:l1", Released: `["delivery.address"]`, Count: 1},
		{Subject: "sub_c", Actor: "payments:p1", Released: `["total"]`, Count: 4},
		{Subject: "sub_d", Actor: "payments:p1", Released: `["tot`, Count: 1}, // cut short: counted, never dropped
	}
	all := ScopeOf(groups, "", nil)
	if len(all.Subjects) != 4 || all.Releases != 8 || !slices.Equal(all.Categories, []string{"addresses", "identity", "orders", "unknown"}) {
		t.Errorf("all: %+v", all)
	}
	addr := ScopeOf(groups, "addresses", nil)
	if !slices.Equal(addr.Subjects, []string{"sub_a", "sub_b", "sub_d"}) || len(addr.Recipients) != 3 ||
		!slices.Equal(addr.Categories, []string{"addresses"}) {
		t.Errorf("addresses: %+v", addr)
	}
	if r := addr.Recipients[0]; r.Party != "logistics:l1" || r.Kind != "logistics" || r.Releases != 1 || r.Subjects != 1 {
		t.Errorf("recipient: %+v", r)
	}
	policy := func(f string) string {
		if f == "items" {
			return "baskets"
		}
		return FieldCategory(f)
	}
	if got := ScopeOf(groups, "baskets", policy); !slices.Equal(got.Subjects, []string{"sub_a", "sub_d"}) {
		t.Errorf("policy categories: %+v", got)
	}
}

func TestSLAOf(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	due := t0.Add(MaxGrievanceResolve)
	gs := []Grievance{
		{OpenedAt: t0, ResolveDue: due},                                               // open
		{OpenedAt: t0, ResolveDue: t0.Add(time.Hour), EscalatedAt: at(2 * time.Hour)}, // overdue, escalated
		{OpenedAt: t0, ResolveDue: due, ResolvedAt: at(24 * time.Hour)},               // in time
		{OpenedAt: t0, ResolveDue: t0.Add(time.Hour), ResolvedAt: at(3 * time.Hour)},  // late
	}
	r := SLAOf(gs, t0.Add(5*time.Hour), (&Desk{}).timers)
	if r.Total != 4 || r.Open != 2 || r.Overdue != 1 || r.Escalated != 1 || r.Resolved != 2 || r.ResolvedInTime != 1 ||
		r.ShareInTime != 0.5 || r.AckHours != 48 || r.ResolveDays != 30 {
		t.Errorf("SLA: %+v", r)
	}
	// Timers longer than the law's are never used.
	ack, res := (&Desk{AckWithin: 72 * time.Hour, ResolveWithin: 90 * 24 * time.Hour}).timers()
	if ack != MaxGrievanceAck || res != MaxGrievanceResolve {
		t.Errorf("timers %v %v", ack, res)
	}
	if ack, res := (&Desk{AckWithin: time.Hour, ResolveWithin: 7 * 24 * time.Hour}).timers(); ack != time.Hour || res != 7*24*time.Hour {
		t.Errorf("quicker timers %v %v", ack, res)
	}
}
