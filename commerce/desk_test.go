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

// Timers longer than the law's are never used; quicker ones are.
func TestDeskTimers(t *testing.T) {
	ack, res := (&Desk{AckWithin: 72 * time.Hour, ResolveWithin: 90 * 24 * time.Hour}).timers()
	if ack != MaxGrievanceAck || res != MaxGrievanceResolve {
		t.Errorf("timers %v %v", ack, res)
	}
	if ack, res := (&Desk{}).timers(); ack != MaxGrievanceAck || res != MaxGrievanceResolve {
		t.Errorf("default timers %v %v", ack, res)
	}
	if ack, res := (&Desk{AckWithin: time.Hour, ResolveWithin: 7 * 24 * time.Hour}).timers(); ack != time.Hour || res != 7*24*time.Hour {
		t.Errorf("quicker timers %v %v", ack, res)
	}
	g := Grievance{ResolveDue: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	for _, tt := range []struct {
		at   time.Time
		want string
	}{{g.ResolveDue.Add(-time.Hour), GrievanceOpen}, {g.ResolveDue.Add(time.Hour), GrievanceOverdue}} {
		if got := g.status(tt.at); got != tt.want {
			t.Errorf("status at %v = %s, want %s", tt.at, got, tt.want)
		}
	}
}
