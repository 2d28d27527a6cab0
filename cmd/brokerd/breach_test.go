package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

// seedShoppers creates n shoppers as the webhook ingest does (blind index,
// data key, sealed identity), without a conversation; it returns their ids
// and numbers.
func (h *harness) seedShoppers(n int) (ids, numbers []string) {
	h.t.Helper()
	ctx := context.Background()
	sys := h.m.Sys
	for i := 0; i < n; i++ {
		wa := fmt.Sprintf("9198%08d", i)
		err := sys.DB.InTx(ctx, func(ctx context.Context) error {
			row, _, err := sys.Stores.Subjects.EnsureSubject(ctx, sys.Pseudo.BlindIndex("wa", wa), broker.NewID("shp"))
			if err != nil {
				return err
			}
			b, _ := json.Marshal(commerce.Identity{WaID: wa, Name: "Shopper"})
			sealed, err := sys.Sealer.Seal(ctx, row.ID, broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: row.ID}, b)
			if err != nil {
				return err
			}
			ids = append(ids, row.ID)
			return sys.Stores.Subjects.SetSubjectIdentity(ctx, row.ID, sealed)
		})
		if err != nil {
			h.t.Fatal(err)
		}
		numbers = append(numbers, wa)
	}
	return ids, numbers
}

// seedAudit appends entries as the group committer does (COPY into
// audit_pending) and integrates them into the signed log.
func (h *harness) seedAudit(entries []audit.Entry) {
	h.t.Helper()
	ctx := context.Background()
	rows := make([][]any, 0, len(entries))
	for _, e := range entries {
		leaf, err := e.Canonical()
		if err != nil {
			h.t.Fatal(err)
		}
		rows = append(rows, []any{e.DecisionID, leaf})
	}
	if _, err := h.m.Sys.DB.Pool.CopyFrom(ctx, pgx.Identifier{"audit_pending"}, []string{"decision_id", "entry"}, pgx.CopyFromRows(rows)); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.m.Sys.IntegrateAudit(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// The breach drill: releases to 1,000 shoppers across three partners; a
// breach of one partner in a time window affects exactly the shoppers the
// log says that partner received in it, the reports carry the Rule 7(2)
// and Art. 33 fields, each affected shopper gets one notice and nobody
// else any, and delivery shows in the report. A tampered log is refused.
func TestBreachDrill(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sys := h.m.Sys
	_, desk := h.partner("DPO desk", broker.KindCompliance, "", "audit:read")
	var partners []broker.Partner
	for _, p := range []struct {
		name string
		kind broker.PartyKind
	}{{"Fresh Mart", broker.KindRetailer}, {"Speedy Couriers", broker.KindLogistics}, {"Pay Co", broker.KindPayments}} {
		id, _ := h.partner(p.name, p.kind, "", "orders:read")
		pt, err := sys.DB.Partners().GetPartner(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		partners = append(partners, pt)
	}
	ids, numbers := h.seedShoppers(1000)

	// Shopper i gets a release to partner i%3 at t0 + i minutes; the
	// retailer also gets shopper i again 2 days later (outside the window),
	// and a denial in the window (nothing released: not a release).
	t0 := time.Now().Add(-30 * 24 * time.Hour).UTC().Truncate(time.Second)
	var entries []audit.Entry
	fields := [][]string{{"customer.ref", "delivery.address", "delivery.postal_code", "items", "total"},
		{"delivery.address", "delivery.slot"}, {"total", "payment.status"}}
	for i, id := range ids {
		p := partners[i%3]
		entries = append(entries, audit.Entry{Time: t0.Add(time.Duration(i) * time.Minute), DecisionID: fmt.Sprintf("dec_drill%05d", i),
			Actor: commerce.PartnerParty(p).Actor(), Action: "read", Purpose: "order_fulfilment",
			Subject: sys.Pseudo.Audit(id), Resource: "order", Released: fields[i%3], Outcome: audit.OutcomeReleased,
			PolicyRevision: "drill"})
		if i%3 == 0 {
			entries = append(entries, audit.Entry{Time: t0.Add(48*time.Hour + time.Duration(i)*time.Minute),
				DecisionID: fmt.Sprintf("dec_drill_late%05d", i), Actor: commerce.PartnerParty(p).Actor(), Action: "read",
				Purpose: "order_fulfilment", Subject: sys.Pseudo.Audit(id), Resource: "order", Released: fields[0],
				Outcome: audit.OutcomeReleased, PolicyRevision: "drill"})
		}
		if i%3 == 1 {
			entries = append(entries, audit.Entry{Time: t0.Add(time.Duration(i) * time.Minute), DecisionID: fmt.Sprintf("dec_drill_deny%05d", i),
				Actor: commerce.PartnerParty(partners[0]).Actor(), Action: "read", Purpose: "marketing",
				Subject: sys.Pseudo.Audit(id), Resource: "order", Withheld: []string{"customer.phone"}, Outcome: audit.OutcomeDenied,
				Reason: "consent", PolicyRevision: "drill"})
		}
	}
	h.seedAudit(entries)

	// The window: the first 600 minutes; the retailer's shoppers in it
	// are i%3 == 0 and i < 600.
	want := map[string]bool{}
	for i := 0; i < 600; i += 3 {
		want[numbers[i]] = true
	}
	officer := broker.Party{ID: "off_drill", Kind: broker.KindOfficer}
	from, to := t0, t0.Add(600*time.Minute)
	if _, err := sys.Breaches.Open(ctx, commerce.BreachFilter{From: from, To: to, Partner: partners[0].ID}, "whatever", officer); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("free-text summary: %v", err)
	}
	b, err := sys.Breaches.Open(ctx, commerce.BreachFilter{From: from, To: to, Partner: partners[0].ID}, "partner_compromise", officer)
	if err != nil {
		t.Fatal(err)
	}
	if b.Affected != len(want) || b.Releases != len(want) || len(b.Recipients) != 1 || b.Recipients[0].Name != "Fresh Mart" ||
		strings.Join(b.Categories, ",") != "addresses,identity,orders" {
		t.Fatalf("breach: affected %d (want %d), releases %d, recipients %+v, categories %v", b.Affected, len(want), b.Releases, b.Recipients, b.Categories)
	}
	// A category narrows it (the policy data's categories): addresses in
	// the same window went to the retailer and the couriers, not to Pay Co.
	bc, err := sys.Breaches.Open(ctx, commerce.BreachFilter{From: from, To: to, Category: "addresses"}, "software_defect", officer)
	if err != nil || bc.Affected != 400 || len(bc.Recipients) != 2 || bc.Recipients[0].Name == "Pay Co" || bc.Recipients[1].Name == "Pay Co" ||
		strings.Join(bc.Categories, ",") != "addresses" {
		t.Fatalf("category breach: %+v %v", bc, err)
	}
	if _, err := sys.Breaches.Open(ctx, commerce.BreachFilter{From: from, To: to, Category: "gossip"}, "other", officer); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("unknown category: %v", err)
	}

	// Notices: one per affected shopper, nobody else.
	n, err := sys.Breaches.Notify(ctx, b.ID, officer)
	if err != nil || n != len(want) {
		t.Fatalf("notify: %d %v", n, err)
	}
	if again, err := sys.Breaches.Notify(ctx, b.ID, officer); err != nil || again != 0 {
		t.Errorf("notified twice: %d %v", again, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]int
	for time.Now().Before(deadline) {
		got = map[string]int{}
		for _, m := range h.wa.all() {
			if strings.Contains(string(m.Raw), b.ID) {
				got[strings.TrimPrefix(m.To, "+")]++
			}
		}
		if len(got) >= len(want) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.waitIdle()
	for wa, c := range got {
		if !want[wa] || c != 1 {
			t.Errorf("notice to %s: %d (affected %v)", wa, c, want[wa])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d shoppers notified, want %d", len(got), len(want))
	}
	var sample sent
	for _, m := range h.wa.all() {
		if strings.Contains(string(m.Raw), b.ID) {
			sample = m
			break
		}
	}
	for _, item := range []string{"What happened", "What was involved", "What it may mean", "What we have done", "What you can do", "Contact"} {
		if !strings.Contains(string(sample.Raw), item) {
			t.Errorf("notice lacks %q: %s", item, sample.Raw)
		}
	}
	// A delivery status comes back for one notice.
	if st := h.webhook(envelope(statusMsg(strings.TrimPrefix(sample.To, "+"), sample.ID, "delivered"))); st != 200 {
		t.Fatalf("status webhook: %d", st)
	}
	h.waitIdle()

	rep, err := sys.Breaches.Get(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Notices["delivered"] != 1 || rep.Notices["sent"] != len(want)-1 {
		t.Errorf("notice statuses: %v", rep.Notices)
	}
	r := sys.Breaches.Report(rep, time.Now())
	raw, _ := json.Marshal(r)
	for _, key := range []string{"intimation_rule_7_2_a", "i_updated_details", "ii_facts_circumstances_reasons", "iii_mitigation",
		"iv_findings_on_person_responsible", "v_remedial_measures", "vi_report_on_intimations", "gdpr_art_33", "b_dpo_contact"} {
		if !strings.Contains(string(raw), `"`+key+`"`) {
			t.Errorf("report lacks %s", key)
		}
	}
	if r.Intimation.Affected != len(want) || !strings.Contains(r.Report.NoticesReport, fmt.Sprintf("%d of %d", len(want), len(want))) ||
		r.HoursLeft <= 71 || !r.GDPR.WithinSeventyTwoHrs {
		t.Errorf("report: %+v", r)
	}
	page, err := r.HTML()
	if err != nil || !strings.Contains(string(page), "Rule 7(2)(b)") {
		t.Errorf("html report: %v", err)
	}
	for _, num := range numbers[:5] {
		if strings.Contains(string(raw)+string(page), num) {
			t.Error("report holds a phone number")
		}
	}

	var list struct {
		Breaches []map[string]any `json:"breaches"`
	}
	if resp := h.do("GET", "/v1/breaches", desk, nil, &list); resp.StatusCode != 200 || len(list.Breaches) != 2 {
		t.Fatalf("GET /v1/breaches: %d %v", resp.StatusCode, list)
	}
	for _, item := range list.Breaches {
		// Both were opened moments ago: the 72-hour report is due in just under 72 hours.
		if left, ok := item["hours_left"].(float64); !ok || left <= 71 || left > 72 {
			t.Errorf("GET /v1/breaches: hours_left %v, want just under 72", item["hours_left"])
		}
	}

	// The workbench in /ui: the countdown, the progress, the report.
	ui := h.officerUI()
	if st, page := ui.get("/ui/breaches"); st != 200 || !strings.Contains(page, b.ID) || !strings.Contains(page, "left") ||
		!strings.Contains(page, fmt.Sprintf("%d/%d", len(want), len(want))) {
		t.Errorf("/ui/breaches: %d\n%s", st, page)
	}
	if st, page := ui.get("/ui/breaches/" + b.ID); st != 200 || !strings.Contains(page, "hours left") || !strings.Contains(page, "Fresh Mart") {
		t.Errorf("/ui/breaches/%s: %d\n%s", b.ID, st, page)
	}
	if st, page := ui.get("/ui/breaches/" + b.ID + "/report"); st != 200 || !strings.Contains(page, "Rule 7(2)(b)") {
		t.Errorf("report page: %d", st)
	}
	if st, _ := ui.post("/ui/breaches", url.Values{"from": {from.Format("2006-01-02T15:04")}, "to": {to.Format("2006-01-02T15:04")},
		"summary_code": {"a hacker"}}); st != 400 {
		t.Errorf("free-text summary in /ui: %d", st)
	}

	// Every step is in the log.
	if _, err := sys.IntegrateAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if c := h.count(`SELECT count(*) FROM audit_entries WHERE action = 'breach_notice' AND resource = $1`, b.ID); c != len(want) {
		t.Errorf("%d breach_notice entries", c)
	}
	if c := h.count(`SELECT count(*) FROM audit_entries WHERE action = 'breach_open' AND outcome = 'done'`); c != 2 {
		t.Errorf("%d breach_open entries", c)
	}

	// Tamper with one stored entry: the workbench refuses.
	err = sys.DB.InTx(ctx, func(ctx context.Context) error {
		tx, _ := postgres.TxFrom(ctx)
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE audit_log SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), 'partner_compromise', 'software_defect'), 'UTF8')
			WHERE idx = (SELECT min(idx) FROM audit_entries WHERE action = 'breach_open')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	before := h.count(`SELECT count(*) FROM breaches`)
	if _, err := sys.Breaches.Open(ctx, commerce.BreachFilter{From: from, To: to}, "other", officer); err != commerce.ErrLogUnverified {
		t.Fatalf("breach on a tampered log: %v", err)
	}
	if st, page := ui.post("/ui/breaches", url.Values{"from": {from.Format("2006-01-02T15:04")}, "to": {to.Format("2006-01-02T15:04")},
		"summary_code": {"other"}}); st != 409 || !strings.Contains(page, "failed verification") {
		t.Errorf("/ui breach on a tampered log: %d", st)
	}
	if h.count(`SELECT count(*) FROM breaches`) != before {
		t.Error("a breach was recorded from a tampered log")
	}
}
