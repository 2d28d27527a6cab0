package main

import (
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
)

// msgFrom builds a value with one text message from a sender named by any
// of a phone, a BSUID and a parent BSUID (each may be empty: a username
// user has no phone).
func msgFrom(phone, bsuid, parent, body string) string {
	contact := map[string]any{"profile": map[string]any{"name": "Asha Verma"}}
	m := map[string]any{"id": wamidFor(phone + bsuid), "timestamp": strings.Trim(ts(), `"`), "type": "text",
		"text": map[string]any{"body": body}}
	if phone != "" {
		contact["wa_id"], m["from"] = phone, phone
	}
	if bsuid != "" {
		contact["user_id"], m["from_user_id"] = bsuid, bsuid
	}
	if parent != "" {
		contact["parent_user_id"], m["from_parent_user_id"] = parent, parent
	}
	return `"contacts":[` + mustJSON(contact) + `],"messages":[` + mustJSON(m) + `]`
}

// systemMsg builds a user_changed_number / user_changed_user_id system
// message (no contacts array, as Meta sends them).
func systemMsg(fromPhone, fromBSUID, typ string, sys map[string]any) string {
	sys["type"] = typ
	sys["body"] = "User Asha Verma changed from " + fromPhone + " to another number"
	m := map[string]any{"id": wamidFor(fromPhone + fromBSUID), "timestamp": strings.Trim(ts(), `"`), "type": "system",
		"system": sys}
	if fromPhone != "" {
		m["from"] = fromPhone
	}
	if fromBSUID != "" {
		m["from_user_id"] = fromBSUID
	}
	return `"messages":[` + mustJSON(m) + `]`
}

// One person, every identifier: phone+BSUID, then the BSUID alone (a
// username user), then the phone alone are one shopper with one consent;
// "my data" covers it all; a number change moves the index; erasure by
// BSUID removes every index (SPEC §10 "Identity", issue 18 item 1).
func TestOneShopperEveryIdentifier(t *testing.T) {
	h := newHarness(t)
	desk := h.partnerWith(token.PartnerSpec{Name: "DPO desk", Kind: broker.KindCompliance,
		Scopes: []string{"audit:read", "subjects:write"}})
	const (
		phone  = "919811190001"
		bsuid  = "IN.1410000000190001"
		parent = "IN.ENT.7700000000190001"
	)
	h.mustPost(msgFrom(phone, bsuid, parent, "Hi"))
	h.next(phone, "notice to the phone", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(phone, commerce.IDConsentAccept))
	h.next(phone, "opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(phone, commerce.IDMarketingNo))
	h.next(phone, "catalog", kindIs("product_list"))

	// The username user: BSUID only. Same shopper, not asked again, and
	// replies go to the phone WhatsApp gave before.
	h.mustPost(msgFrom("", bsuid, "", "my data"))
	h.next(phone, "data summary by BSUID", contains("What we hold about you"))
	h.mustPost(msgFrom("", "", parent, "my data"))
	h.next(phone, "data summary by parent BSUID", contains("What we hold about you"))
	h.mustPost(msgFrom(phone, "", "", "my data"))
	h.next(phone, "data summary by phone", contains("What we hold about you"))
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM subjects`); n != 1 {
		t.Fatalf("%d subjects for one person, want 1", n)
	}
	if n := h.count(`SELECT count(DISTINCT subject_id) FROM subject_identifiers`); n != 1 {
		t.Fatalf("identifiers point to %d subjects", n)
	}
	if n := h.count(`SELECT count(*) FROM subject_identifiers`); n != 3 {
		t.Errorf("%d identifiers indexed, want 3 (phone, BSUID, parent BSUID)", n)
	}
	for _, m := range h.wa.all() {
		if m.To == bsuid || m.To == parent {
			t.Errorf("a reply went to the BSUID although the phone is known: %s", m.kind())
		}
	}
	notices := 0
	for _, m := range h.wa.all() {
		if offers(commerce.IDConsentAccept)(m) {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("the notice was shown %d times, want once", notices)
	}

	// The number changes: the index moves, a message from the new number
	// is the same shopper, and replies go there.
	const newPhone, newBSUID = "919811190002", "IN.1410000000190002"
	h.mustPost(systemMsg(phone, "", commerce.IdentityChangedNumber, map[string]any{"wa_id": newPhone,
		"user_id": newBSUID, "previous_user_id": bsuid}))
	h.mustPost(systemMsg(phone, "", commerce.IdentityChangedNumber, map[string]any{"wa_id": newPhone,
		"user_id": newBSUID, "previous_user_id": bsuid})) // redelivered
	h.mustPost(msgFrom(newPhone, "", "", "my data"))
	h.next(newPhone, "data summary at the new number", contains("What we hold about you"))
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM subjects`); n != 1 {
		t.Fatalf("%d subjects after the number change, want 1", n)
	}
	if n := h.count(`SELECT count(*) FROM subject_identifiers WHERE blind_index = $1`,
		h.m.Sys.Pseudo.BlindIndex(commerce.IDPhone, phone)); n != 0 {
		t.Error("the old number still points to the shopper (a recycled number would reach them)")
	}
	if n := h.count(`SELECT count(*) FROM subject_identifiers WHERE blind_index = $1`,
		h.m.Sys.Pseudo.BlindIndex(commerce.IDBSUID, bsuid)); n != 0 {
		t.Error("the old BSUID still points to the shopper")
	}
	relinked := `SELECT count(*) FROM (SELECT entry AS e FROM audit_pending UNION ALL SELECT leaf FROM audit_entries) x
		WHERE convert_from(e, 'UTF8')::jsonb->>'action' = 'identity.relinked'
		  AND convert_from(e, 'UTF8')::jsonb->>'reason' = 'user_changed_number'`
	if n := h.count(relinked); n != 1 {
		t.Errorf("%d identity.relinked entries, want 1 (the redelivery moves nothing)", n)
	}
	// The BSUID changes too, announced alone.
	const newerBSUID = "IN.1410000000190003"
	h.mustPost(systemMsg("", newBSUID, commerce.IdentityChangedUserID, map[string]any{"user_id": newerBSUID}))
	h.mustPost(msgFrom("", newerBSUID, "", "my data"))
	h.next(newPhone, "data summary by the newer BSUID", contains("What we hold about you"))
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM subjects`); n != 1 {
		t.Fatalf("%d subjects after the BSUID change, want 1", n)
	}

	// Erasure through the BSUID removes every index.
	var out map[string]any
	if r := h.do("POST", "/v1/subjects/disclosures", desk.Bearer, map[string]any{"user_id": newerBSUID}, &out); r.StatusCode != 200 {
		t.Fatalf("disclosures by user_id: %d", r.StatusCode)
	}
	if r := h.do("POST", "/v1/subjects/erase", desk.Bearer, map[string]any{"user_id": "IN.0000000000000009", "confirm": true}, nil); r.StatusCode != 404 {
		t.Errorf("erase of an unknown BSUID: %d, want 404", r.StatusCode)
	}
	if r := h.do("POST", "/v1/subjects/erase", desk.Bearer, map[string]any{"user_id": "not a bsuid", "confirm": true}, nil); r.StatusCode != 400 {
		t.Errorf("erase of a malformed BSUID: %d, want 400", r.StatusCode)
	}
	if r := h.do("POST", "/v1/subjects/erase", desk.Bearer, map[string]any{"user_id": newerBSUID, "wa_id": newPhone, "confirm": true}, nil); r.StatusCode != 400 {
		t.Errorf("erase naming both: %d, want 400", r.StatusCode)
	}
	if r := h.do("POST", "/v1/subjects/erase", desk.Bearer, map[string]any{"user_id": newerBSUID, "confirm": true}, nil); r.StatusCode != 200 {
		t.Fatalf("erase by user_id: %d", r.StatusCode)
	}
	if n := h.count(`SELECT count(*) FROM subject_identifiers`); n != 0 {
		t.Errorf("%d indexes left after erasure", n)
	}
	if n := h.count(`SELECT count(*) FROM subjects WHERE erased_at IS NULL`); n != 0 {
		t.Errorf("%d shoppers not erased", n)
	}
}

// Identifiers that collide: a message naming one shopper's phone and
// another's BSUID goes to the phone's shopper and moves nothing; a number
// change to a number another shopper had (a recycled number) takes it from
// them, and their replies no longer go to it.
func TestIdentifierCollisions(t *testing.T) {
	h := newHarness(t)
	const (
		phoneA, bsuidA = "919811190011", "IN.1410000000190011"
		bsuidB         = "IN.1410000000190012"
		phoneC         = "919811190013"
	)
	h.mustPost(msgFrom(phoneA, bsuidA, "", "Hi"))
	h.next(phoneA, "notice to A", offers(commerce.IDConsentAccept))
	h.mustPost(msgFrom("", bsuidB, "", "Hi"))
	h.next(bsuidB, "notice to B", offers(commerce.IDConsentAccept))
	h.waitIdle()
	subjectOf := func(kind, v string) string {
		var s string
		_ = h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT subject_id FROM subject_identifiers WHERE blind_index = $1`,
			h.m.Sys.Pseudo.BlindIndex(kind, v)).Scan(&s)
		return s
	}
	a, b := subjectOf(commerce.IDPhone, phoneA), subjectOf(commerce.IDBSUID, bsuidB)
	if a == "" || b == "" || a == b {
		t.Fatalf("subjects %q %q", a, b)
	}

	// A's phone with B's BSUID: A's, and B keeps its BSUID.
	h.mustPost(msgFrom(phoneA, bsuidB, "", "Hi"))
	h.next(phoneA, "notice again to A", offers(commerce.IDConsentAccept))
	h.waitIdle()
	if got := subjectOf(commerce.IDBSUID, bsuidB); got != b {
		t.Errorf("B's BSUID moved to %q", got)
	}
	if n := h.count(`SELECT count(*) FROM subjects`); n != 2 {
		t.Errorf("%d subjects, want 2", n)
	}

	// C changes to A's old number: the number is C's now.
	h.mustPost(msgFrom(phoneC, "", "", "Hi"))
	h.next(phoneC, "notice to C", offers(commerce.IDConsentAccept))
	h.waitIdle()
	c := subjectOf(commerce.IDPhone, phoneC)
	h.mustPost(systemMsg(phoneC, "", commerce.IdentityChangedNumber, map[string]any{"wa_id": phoneA}))
	h.waitIdle()
	if got := subjectOf(commerce.IDPhone, phoneA); got != c {
		t.Fatalf("the recycled number points to %q, want C %q", got, c)
	}
	if subjectOf(commerce.IDPhone, phoneC) != "" {
		t.Error("C's old number still points to C")
	}
	taken := `SELECT count(*) FROM (SELECT entry AS e FROM audit_pending UNION ALL SELECT leaf FROM audit_entries) x
		WHERE convert_from(e, 'UTF8')::jsonb->>'action' = 'identity.relinked'
		  AND convert_from(e, 'UTF8')::jsonb->>'reason' = '` + commerce.ReasonIdentifierTaken + `'`
	if n := h.count(taken); n != 1 {
		t.Errorf("%d entries for the identifier taken from A, want 1", n)
	}
	// A writes by BSUID: the reply goes to A's BSUID, not to the number
	// that is C's now.
	before := len(h.wa.all())
	h.mustPost(msgFrom("", bsuidA, "", "Hi"))
	h.next(bsuidA, "reply to A's BSUID", offers(commerce.IDConsentAccept))
	h.waitIdle()
	for _, m := range h.wa.all()[before:] {
		if m.To == "+"+phoneA {
			t.Errorf("A's reply went to the recycled number: %s", m.kind())
		}
	}
}
