package main

import (
	"context"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

var grvRe = regexp.MustCompile(`grv_[A-Za-z0-9_-]+`)

// onboard takes a shopper through the notice and the opt-in.
func (h *harness) onboard(wa string) {
	h.t.Helper()
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	h.next(wa, "catalog", kindIs("product_list"))
}

// A complaint from the chat is a sealed ticket, acknowledged at once with
// its id, the contact and the deadline; it shows in GET /v1/grievances,
// goes overdue under the desk's clock and is escalated once (audited), and
// its resolution reaches the shopper. Nothing the shopper typed reaches the
// log or the ticket's plaintext columns.
func TestGrievanceFromTheChat(t *testing.T) {
	var skew atomic.Int64
	h := newHarness(t)
	h.m.Sys.Desk.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	_, desk := h.partner("DPO desk", broker.KindCompliance, "", "audit:read")
	_, retail := h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read")
	const wa = "919811117777"
	const complaint = "The atta I got from Asha's store was stale and nobody answered"
	h.onboard(wa)

	h.mustPost(textMsg(wa, "complaint"))
	h.next(wa, "complaint prompt", contains("describe your complaint"))
	h.mustPost(textMsg(wa, complaint))
	ack := h.next(wa, "acknowledgement", contains("grv_"))
	id := grvRe.FindString(ack.text())
	for _, want := range []string{"Acknowledged", "resolve it by", commerce.DefaultDPOContact, "Data Protection Board"} {
		if !strings.Contains(ack.text(), want) {
			t.Errorf("acknowledgement lacks %q:\n%s", want, ack.text())
		}
	}

	type listing struct {
		Grievances []commerce.Grievance `json:"grievances"`
		SLA        commerce.SLAReport   `json:"sla"`
	}
	list := func(status string) listing {
		t.Helper()
		var out listing
		if r := h.do("GET", "/v1/grievances?status="+status, desk, nil, &out); r.StatusCode != 200 {
			t.Fatalf("GET /v1/grievances?status=%s: %d", status, r.StatusCode)
		}
		return out
	}
	open := list("open")
	if len(open.Grievances) != 1 || open.Grievances[0].ID != id || open.Grievances[0].AcknowledgedAt == nil ||
		open.Grievances[0].Status != "open" || open.Grievances[0].Text != "" {
		t.Fatalf("open tickets: %+v", open.Grievances)
	}
	if g := open.Grievances[0]; g.ResolveDue.Sub(g.OpenedAt) != commerce.MaxGrievanceResolve || g.AckDue.Sub(g.OpenedAt) != commerce.MaxGrievanceAck {
		t.Errorf("timers: %+v", g)
	}
	if r := h.do("GET", "/v1/grievances", retail, nil, nil); r.StatusCode != 403 {
		t.Errorf("a retailer listed grievances: %d", r.StatusCode)
	}
	if r := h.do("GET", "/v1/grievances?status=bogus", desk, nil, nil); r.StatusCode != 400 {
		t.Errorf("bad status filter: %d", r.StatusCode)
	}
	if n := h.count(`SELECT count(*) FROM grievances WHERE position($1::bytea IN sealed) > 0`, []byte("stale")); n != 0 {
		t.Error("complaint text stored in plaintext")
	}
	g, err := h.m.Sys.Desk.Read(context.Background(), id, broker.Party{ID: "off_1", Kind: broker.KindOfficer})
	if err != nil || g.Text != complaint {
		t.Fatalf("officer read: %q %v", g.Text, err)
	}

	// A month later it is overdue, and the sweeper escalates it once.
	if n, err := h.m.Sys.Desk.Escalate(context.Background()); err != nil || n != 0 {
		t.Fatalf("escalated before the deadline: %d %v", n, err)
	}
	skew.Store(int64(31 * 24 * time.Hour))
	if od := list("overdue"); len(od.Grievances) != 1 || od.SLA.Overdue != 1 {
		t.Fatalf("overdue: %+v", od)
	}
	if n, err := h.m.Sys.Desk.Escalate(context.Background()); err != nil || n != 1 {
		t.Fatalf("escalation: %d %v", n, err)
	}
	if n, _ := h.m.Sys.Desk.Escalate(context.Background()); n != 0 {
		t.Errorf("escalated twice: %d", n)
	}

	// Resolution: a code from the list, once; the shopper is told.
	officer := broker.Party{ID: "off_1", Kind: broker.KindOfficer}
	if _, err := h.m.Sys.Desk.Resolve(context.Background(), id, "we fixed it", officer); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("free-text outcome: %v", err)
	}
	if _, err := h.m.Sys.Desk.Resolve(context.Background(), id, commerce.OutcomeInFavour, officer); err != nil {
		t.Fatal(err)
	}
	h.next(wa, "outcome", contains("upheld"))
	if _, err := h.m.Sys.Desk.Resolve(context.Background(), id, commerce.OutcomeExplained, officer); broker.ErrorCode(err) != broker.EConflict {
		t.Errorf("resolved twice: %v", err)
	}
	done := list("resolved")
	if len(done.Grievances) != 1 || done.Grievances[0].Outcome != commerce.OutcomeInFavour || done.SLA.Resolved != 1 ||
		done.SLA.ResolvedInTime != 0 || done.SLA.ShareInTime != 0 || done.SLA.Escalated != 1 {
		t.Errorf("resolved: %+v", done)
	}

	// Every step is in the log, with codes only.
	h.waitIdle()
	if _, err := h.m.Sys.IntegrateAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"grievance_open", "grievance_acknowledge", "grievance_read", "grievance_escalate", "grievance_resolve"} {
		if n := h.count(`SELECT count(*) FROM audit_entries WHERE action = $1 AND resource = $2`, action, id); n != 1 {
			t.Errorf("%d %s entries", n, action)
		}
	}
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE position($1::bytea IN leaf) > 0 OR position($2::bytea IN leaf) > 0`,
		[]byte("stale"), []byte(wa)); n != 0 {
		t.Errorf("%d audit leaves hold the complaint or the number", n)
	}
}
