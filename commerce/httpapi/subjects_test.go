package httpapi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

func TestSubjectRoutes(t *testing.T) {
	row := commerce.SubjectRow{ID: "shp_1"}
	resolve := func(wa, user string) (commerce.SubjectRow, error) {
		if wa == "919811112222" || user == "IN.1410000000000001" {
			return row, nil
		}
		return commerce.SubjectRow{}, broker.Errorf(broker.ENotFound, "subject shp_9 not found")
	}

	t.Run("disclosures are audited as the officer's action", func(t *testing.T) {
		s := newServer(t, nil)
		s.rights.ResolveFn = resolve
		s.rights.DisclosuresFn = func(subject string) ([]commerce.Disclosure, error) {
			if subject != "shp_1" {
				t.Errorf("disclosures of %q", subject)
			}
			return nil, nil
		}
		var entries []broker.Event
		s.audit.RecordFn = func(ev broker.Event) error { entries = append(entries, ev); return nil }
		a := s.officer(t, "GET", "/v1/subjects/disclosures?wa_id=919811112222", "asha", "")
		if a.Status != 200 {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		pseudo := s.pseudo.Audit("shp_1")
		if !strings.Contains(a.Body, `"disclosures":[]`) || a.JSON(t)["subject"] != pseudo || strings.Contains(a.Body, "shp_1") {
			t.Fatalf("body %s", a.Body)
		}
		if len(entries) != 1 {
			t.Fatalf("%d entries", len(entries))
		}
		e := entries[0]
		// The Recorder pseudonymises the subject and stamps the policy revision.
		if e.Actor != "officer:asha" || e.Action != "disclosures" || e.Subject != "shp_1" || e.Reason != "access_request" ||
			e.Purpose != broker.PurposeDataSubjectRequest || e.Outcome != audit.OutcomeDone || a.Header.Get("X-Decision-Id") != e.DecisionID {
			t.Fatalf("entry %+v, header %q", e, a.Header.Get("X-Decision-Id"))
		}
		// The same by POST, with a BSUID.
		a = s.officer(t, "POST", "/v1/subjects/disclosures", "asha", `{"user_id":"IN.1410000000000001"}`)
		if a.Status != 200 || len(entries) != 2 {
			t.Fatalf("POST %d %s", a.Status, a.Body)
		}
	})
	t.Run("an unknown shopper is a fixed not-found", func(t *testing.T) {
		s := newServer(t, nil)
		s.rights.ResolveFn = resolve
		a := s.officer(t, "GET", "/v1/subjects/disclosures?wa_id=910000000000", "asha", "")
		if a.Status != 404 || strings.Contains(a.Body, "shp_9") || !strings.Contains(a.Body, "no shopper with that identifier") {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
	})
	t.Run("no audit entry, no answer", func(t *testing.T) {
		s := newServer(t, nil)
		s.rights.ResolveFn = resolve
		s.rights.DisclosuresFn = func(string) ([]commerce.Disclosure, error) {
			return []commerce.Disclosure{{Party: "logistics:c1", Purpose: "order_fulfilment"}}, nil
		}
		s.audit.RecordFn = func(broker.Event) error { return errors.New("disk full") }
		a := s.officer(t, "GET", "/v1/subjects/disclosures?wa_id=919811112222", "asha", "")
		if a.Status != 503 || strings.Contains(a.Body, "logistics:c1") {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
	})
	t.Run("export is released to the officer", func(t *testing.T) {
		s := newServer(t, nil)
		s.rights.ResolveFn = resolve
		var to broker.Party
		s.rights.ReleaseExportFn = func(subject string, p broker.Party) (commerce.Export, broker.Decision, error) {
			to = p
			return commerce.Export{Subject: s.pseudo.Audit(subject)}, broker.Decision{ID: "dec_export"}, nil
		}
		a := s.officer(t, "POST", "/v1/subjects/export", "asha", `{"wa_id":"919811112222"}`)
		if a.Status != 200 || a.Header.Get("X-Decision-Id") != "dec_export" ||
			!strings.Contains(a.Header.Get("Content-Disposition"), "subject-export.json") || to.ID != "asha" || to.Kind != broker.KindOfficer {
			t.Fatalf("%d %v %s (to %+v)", a.Status, a.Header, a.Body, to)
		}
		if m := s.officers.Mutating; len(m) == 0 || !m[len(m)-1] {
			t.Fatalf("a POST did not ask for a mutating session: %v", m)
		}
		// A denied export still names its decision.
		s.rights.ReleaseExportFn = func(string, broker.Party) (commerce.Export, broker.Decision, error) {
			return commerce.Export{}, broker.Decision{ID: "dec_denied"}, broker.Errorf(broker.EDenied, "restricted")
		}
		a = s.officer(t, "POST", "/v1/subjects/export", "asha", `{"wa_id":"919811112222"}`)
		if a.Status != 403 || a.Header.Get("X-Decision-Id") != "dec_denied" {
			t.Fatalf("denied %d %v %s", a.Status, a.Header, a.Body)
		}
		if a := s.officer(t, "POST", "/v1/subjects/export", "asha", `{"wa_id":"919811112222","extra":1}`); a.Status != 400 {
			t.Fatalf("unknown field accepted: %d", a.Status)
		}
		if a := s.officer(t, "POST", "/v1/subjects/export", "", `{"wa_id":"919811112222"}`); a.Status != 401 {
			t.Fatalf("anonymous export: %d", a.Status)
		}
	})
	t.Run("erase", func(t *testing.T) {
		cases := []struct {
			name, body string
			status     int
			reason     string // the reason Erase gets; "" when it must not be called
		}{
			{"without confirm", `{"wa_id":"919811112222"}`, 400, ""},
			{"confirm false", `{"wa_id":"919811112222","confirm":false}`, 400, ""},
			{"free-text reason", `{"wa_id":"919811112222","confirm":true,"reason":"Ravi asked by phone"}`, 400, ""},
			{"unknown shopper", `{"wa_id":"910000000000","confirm":true}`, 404, ""},
			{"default reason", `{"wa_id":"919811112222","confirm":true}`, 200, commerce.EraseRequest},
			{"legal order", `{"user_id":"IN.1410000000000001","confirm":true,"reason":"legal_order"}`, 200, commerce.EraseLegalOrder},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s := newServer(t, nil)
				s.rights.ResolveFn = resolve
				called := ""
				s.rights.EraseFn = func(subject string, actor broker.Party, reason string) error {
					if subject != "shp_1" || actor.ID != "asha" {
						t.Errorf("erase %q by %+v", subject, actor)
					}
					called = reason
					return nil
				}
				a := s.officer(t, "POST", "/v1/subjects/erase", "asha", tc.body)
				if a.Status != tc.status || called != tc.reason {
					t.Fatalf("%d %s, erased with %q; want %d, %q", a.Status, a.Body, called, tc.status, tc.reason)
				}
				if tc.status == 200 && (a.JSON(t)["status"] != "erased" || a.JSON(t)["subject"] != s.pseudo.Audit("shp_1")) {
					t.Fatalf("body %s", a.Body)
				}
			})
		}
	})
}

func TestSubjectConsentsAndGrievances(t *testing.T) {
	s := newServer(t, nil)
	s.rights.ResolveFn = func(wa, _ string) (commerce.SubjectRow, error) {
		if wa != "919811112222" {
			return commerce.SubjectRow{}, broker.Errorf(broker.ENotFound, "no")
		}
		return commerce.SubjectRow{ID: "shp_1"}, nil
	}
	s.shop.ConsentsOfFn = func(subject string) (commerce.ConsentExport, error) { return commerce.ConsentExport{}, nil }
	var entries []broker.Event
	s.audit.RecordFn = func(ev broker.Event) error { entries = append(entries, ev); return nil }
	a := s.officer(t, "POST", "/v1/subjects/consents", "asha", `{"wa_id":"919811112222"}`)
	if a.Status != 200 || len(entries) != 1 || entries[0].Action != "consents" || a.Header.Get("X-Decision-Id") != entries[0].DecisionID {
		t.Fatalf("%d %s, entries %+v", a.Status, a.Body, entries)
	}
	// A compliance client with audit:read may ask too; a store may not.
	if a := s.as(t, "tok-dpo", "POST", "/v1/subjects/consents", `{"wa_id":"919811112222"}`); a.Status != 200 || entries[1].Actor != "compliance:dpo-1" {
		t.Fatalf("client %d %s, %+v", a.Status, a.Body, entries)
	}
	if a := s.as(t, "tok-store", "POST", "/v1/subjects/consents", `{"wa_id":"919811112222"}`); a.Status != 403 {
		t.Fatalf("store %d %s", a.Status, a.Body)
	}

	var status string
	s.grievances.ListFn = func(st string, limit int) ([]commerce.Grievance, error) { status = st; return nil, nil }
	s.grievances.SLAFn = func() (commerce.SLAReport, error) { return commerce.SLAReport{}, nil }
	if a := s.officer(t, "GET", "/v1/grievances?status=overdue", "asha", ""); a.Status != 200 || status != "overdue" {
		t.Fatalf("grievances %d %s", a.Status, a.Body)
	}
	if a := s.as(t, "tok-courier", "GET", "/v1/grievances", ""); a.Status != 403 {
		t.Fatalf("courier read grievances: %d", a.Status)
	}
}
