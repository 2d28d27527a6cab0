package main

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

var nomPayloadRe = regexp.MustCompile(`nominee:confirm:nom_[A-Za-z0-9_-]+`)

// buttonMsg is a template quick-reply from wa, as the Cloud API sends it.
// buttonMsg (consent_test.go) sends a template quick-reply answer.

// A shopper names a nominee; the nominee is asked by template and confirms
// from that number (nobody else can); after an officer records the event,
// the nominee's access request is answered with the shopper's export. The
// nominee's number is never in plaintext at rest or in the log.
func TestNomineeConfirmsAndObtainsAccess(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const wa, nominee, stranger = "919811116666", "919811119999", "919811115555"
	h.onboard(wa)

	h.mustPost(textMsg(wa, "nominate"))
	h.next(wa, "nominee prompt", contains("country code"))
	h.mustPost(textMsg(wa, "+91 98111 19999"))
	asked := h.next(wa, "nomination reply", contains("asked your nominee"))
	id := regexp.MustCompile(`nom_[A-Za-z0-9_-]+`).FindString(asked.text())
	ask := h.next(nominee, "nominee template", kindIs("template"))
	payload := nomPayloadRe.FindString(string(ask.Raw))
	if payload != commerce.NomineeConfirmPrefix+id || ask.str("template", "name") != "nominee_request" {
		t.Fatalf("nominee template: %s", ask.Raw)
	}

	// Someone else pressing the button (a forwarded payload) confirms nothing.
	h.mustPost(buttonMsg(stranger, payload))
	h.next(stranger, "refusal", contains("not for this number"))
	h.mustPost(buttonMsg(nominee, payload))
	h.next(nominee, "confirmation", contains("you are now the nominee"))
	h.next(wa, "shopper told", contains("nominee has confirmed"))

	officer := broker.Party{ID: "off_1", Kind: broker.KindOfficer}
	noms := h.m.Sys.Nominees
	if _, err := noms.Access(ctx, id, nominee, officer); broker.ErrorCode(err) != broker.EDenied {
		t.Errorf("access before any event: %v", err)
	}
	if err := noms.RecordEvent(ctx, id, "he died, sadly", officer); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("free-text event: %v", err)
	}
	// The officer records the event in /ui.
	ui := h.officerUI()
	if st, page := ui.get("/ui/nominations?id=" + id); st != 200 || !strings.Contains(page, "none recorded") ||
		!strings.Contains(page, `id="nom-record"`) || strings.Contains(page, nominee) {
		t.Fatalf("/ui/nominations: %d\n%s", st, page)
	}
	if st, _ := ui.post("/ui/nominations/event", url.Values{"id": {id}, "event": {"gone fishing"}}); st != 400 {
		t.Errorf("free-text event in /ui: %d", st)
	}
	if st, _ := ui.post("/ui/nominations/event", url.Values{"id": {id}, "event": {"incapacity"}}); st != 303 {
		t.Fatalf("record the event in /ui: %d", st)
	}
	if st, page := ui.get("/ui/nominations?id=" + id); st != 200 || !strings.Contains(page, "incapacity, recorded") {
		t.Errorf("after the event: %d", st)
	}
	if st, _ := ui.get("/ui/nominations?id=nom_nobody"); st != 200 {
		t.Errorf("unknown nomination: %d", st)
	}
	if err := noms.RecordEvent(ctx, id, "death", officer); broker.ErrorCode(err) != broker.EConflict {
		t.Errorf("second event: %v", err)
	}
	if _, err := noms.Access(ctx, id, stranger, officer); broker.ErrorCode(err) != broker.EDenied {
		t.Errorf("access for another number: %v", err)
	}
	ex, err := noms.Access(ctx, id, "+"+nominee, officer)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Subject != h.m.Sys.Pseudo.Audit(h.subjectOf(wa)) || ex.Orders == nil {
		t.Errorf("export: %+v", ex)
	}

	h.waitIdle()
	if _, err := h.m.Sys.IntegrateAudit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"nominee_nominate", "nominee_confirm", "nominee_event", "nominee_request"} {
		if n := h.count(`SELECT count(*) FROM audit_entries WHERE action = $1 AND resource = $2`, action, id); n != 1 {
			t.Errorf("%d %s entries", n, action)
		}
	}
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE position($1::bytea IN leaf) > 0`, []byte(nominee)); n != 0 {
		t.Errorf("%d audit leaves hold the nominee's number", n)
	}
	if n := h.count(`SELECT count(*) FROM nominations WHERE position($1::bytea IN sealed) > 0`, []byte(nominee)); n != 0 {
		t.Error("nominee's number stored in plaintext")
	}
	if strings.Contains(mustJSON(ex), nominee) {
		t.Error("the export names the nominee")
	}
}
