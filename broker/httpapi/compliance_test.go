package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/commerce"
)

// The compliance API's handlers against small fakes of their ports, with no
// database (as wtf's http/server_test.go does): each fake has a func field
// per method, which the test sets for what it wants to see.

type fakeAudit struct {
	CheckpointFn  func() (string, error)
	InclusionFn   func(index, size uint64) (any, error)
	ConsistencyFn func(from, to uint64) (any, error)
	EntriesFn     func(f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error)
	RecordFn      func(ev broker.Event) error
}

func (a *fakeAudit) Checkpoint(context.Context) (string, error) { return a.CheckpointFn() }
func (a *fakeAudit) Inclusion(_ context.Context, index, size uint64) (any, error) {
	return a.InclusionFn(index, size)
}
func (a *fakeAudit) Consistency(_ context.Context, from, to uint64) (any, error) {
	return a.ConsistencyFn(from, to)
}
func (a *fakeAudit) Entries(_ context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error) {
	return a.EntriesFn(f, cursor, limit)
}
func (a *fakeAudit) Record(_ context.Context, ev broker.Event) error { return a.RecordFn(ev) }

type fakeRights struct {
	ResolveFn       func(waID, userID string) (commerce.SubjectRow, error)
	DisclosuresFn   func(subject string) ([]commerce.Disclosure, error)
	ReleaseExportFn func(subject string, party broker.Party) (commerce.Export, broker.Decision, error)
	EraseFn         func(subject string, actor broker.Party, reason string) error
}

func (r *fakeRights) Resolve(_ context.Context, waID, userID string) (commerce.SubjectRow, error) {
	return r.ResolveFn(waID, userID)
}
func (r *fakeRights) Disclosures(_ context.Context, subject string) ([]commerce.Disclosure, error) {
	return r.DisclosuresFn(subject)
}
func (r *fakeRights) ReleaseExport(_ context.Context, subject string, party broker.Party) (commerce.Export, broker.Decision, error) {
	return r.ReleaseExportFn(subject, party)
}
func (r *fakeRights) Erase(_ context.Context, subject string, actor broker.Party, reason string) error {
	return r.EraseFn(subject, actor, reason)
}

type fakeReports struct{ ProcessingFn func() (any, error) }

func (r *fakeReports) Processing(context.Context) (any, error) { return r.ProcessingFn() }

// fakeOfficers signs in the officer named by the X-Test-Officer header and
// remembers whether the route asked for a mutating session.
type fakeOfficers struct{ mutating []bool }

func (o *fakeOfficers) Officer(c *fiber.Ctx, mutating bool) (broker.Party, bool) {
	o.mutating = append(o.mutating, mutating)
	id := c.Get("X-Test-Officer")
	return broker.Party{ID: id, Kind: broker.KindOfficer}, id != ""
}

type fakePolicy struct{ rev string }

func (p fakePolicy) Evaluate(context.Context, broker.PolicyInput) (broker.PolicyDecision, error) {
	return broker.PolicyDecision{}, errors.New("not used")
}
func (p fakePolicy) Revision() string { return p.rev }

// complianceServer is a Server over fresh fakes; each test sets the funcs it
// expects to be called (an unset one panics, which the recover middleware
// turns into a 500, so an unexpected call fails the test).
type complianceServer struct {
	*httpapi.Server
	audit    *fakeAudit
	rights   *fakeRights
	reports  *fakeReports
	officers *fakeOfficers
	pseudo   *broker.Pseudonymizer
}

func newComplianceServer(t *testing.T) *complianceServer {
	t.Helper()
	pseudo, err := broker.NewPseudonymizer(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := &complianceServer{audit: &fakeAudit{}, rights: &fakeRights{}, reports: &fakeReports{},
		officers: &fakeOfficers{}, pseudo: pseudo}
	s.Server = httpapi.New(httpapi.Config{}, httpapi.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Audit: s.audit, Reports: s.reports, Subjects: s.rights, Pseudonyms: pseudo, Officers: s.officers,
		Policy: fakePolicy{rev: "rev-7"}})
	return s
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("body %q: %v", a.body, err)
	}
	return m
}

func (a answer) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := a.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// do sends a request as officer (none when "").
func (s *complianceServer) do(t *testing.T, method, target, officer, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if officer != "" {
		req.Header.Set("X-Test-Officer", officer)
	}
	res, err := s.App.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

func TestAuditEntries(t *testing.T) {
	t.Run("needs an officer or a token", func(t *testing.T) {
		s := newComplianceServer(t)
		if a := s.do(t, "GET", "/v1/audit/entries", "", ""); a.status != 401 || a.errorCode(t) != broker.EUnauthorized {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	t.Run("filter, cursor and limit reach the port", func(t *testing.T) {
		s := newComplianceServer(t)
		var got broker.AuditFilter
		var cursor string
		var limit int
		s.audit.EntriesFn = func(f broker.AuditFilter, c string, l int) ([]audit.Entry, string, error) {
			got, cursor, limit = f, c, l
			return []audit.Entry{{DecisionID: "dec_1", Outcome: audit.OutcomeReleased}}, "next-2", nil
		}
		a := s.do(t, "GET", "/v1/audit/entries?subject=sub_X&partner=logistics:c1&purpose=order_fulfilment"+
			"&outcome=denied&action=release&from=2026-01-02T03:04:05Z&cursor=abc&limit=20", "asha", "")
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if got.Subject != "sub_X" || got.Actor != "logistics:c1" || got.Purpose != "order_fulfilment" ||
			got.Outcome != "denied" || got.Action != "release" || got.From.Year() != 2026 || !got.To.IsZero() ||
			cursor != "abc" || limit != 20 {
			t.Fatalf("port got %+v %q %d", got, cursor, limit)
		}
		m := a.json(t)
		if m["next_cursor"] != "next-2" || len(m["entries"].([]any)) != 1 {
			t.Fatalf("body %s", a.body)
		}
		if len(s.officers.mutating) != 1 || s.officers.mutating[0] {
			t.Fatalf("a GET asked for a mutating session: %v", s.officers.mutating)
		}
	})
	t.Run("an empty page is a list and no cursor", func(t *testing.T) {
		s := newComplianceServer(t)
		s.audit.EntriesFn = func(broker.AuditFilter, string, int) ([]audit.Entry, string, error) { return nil, "", nil }
		a := s.do(t, "GET", "/v1/audit/entries", "asha", "")
		if a.status != 200 || !strings.Contains(a.body, `"entries":[]`) || !strings.Contains(a.body, `"next_cursor":null`) {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	for _, q := range []string{"limit=0", "limit=501", "limit=ten", "from=yesterday", "to=2026-01-02",
		"subject=" + strings.Repeat("x", 101), "cursor=" + strings.Repeat("c", 201)} {
		t.Run("refuses "+q[:min(len(q), 20)], func(t *testing.T) {
			s := newComplianceServer(t) // EntriesFn unset: reaching the port is a 500
			if a := s.do(t, "GET", "/v1/audit/entries?"+q, "asha", ""); a.status != 400 || a.errorCode(t) != broker.EInvalid {
				t.Fatalf("%d %s", a.status, a.body)
			}
		})
	}
	t.Run("errors map through the one table, internal text never leaks", func(t *testing.T) {
		s := newComplianceServer(t)
		s.audit.EntriesFn = func(broker.AuditFilter, string, int) ([]audit.Entry, string, error) {
			return nil, "", broker.Errorf(broker.EUnavailable, "database unavailable")
		}
		if a := s.do(t, "GET", "/v1/audit/entries", "asha", ""); a.status != 503 || a.errorCode(t) != broker.EUnavailable {
			t.Fatalf("%d %s", a.status, a.body)
		}
		s.audit.EntriesFn = func(broker.AuditFilter, string, int) ([]audit.Entry, string, error) {
			return nil, "", errors.New(`pq: relation "audit_log" does not exist`)
		}
		a := s.do(t, "GET", "/v1/audit/entries", "asha", "")
		if a.status != 500 || strings.Contains(a.body, "audit_log") {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
}

func TestAuditCheckpointAndProofs(t *testing.T) {
	s := newComplianceServer(t)
	s.audit.CheckpointFn = func() (string, error) { return "sieve.example/log\n42\nAAAA=\n", nil }
	a := s.do(t, "GET", "/v1/audit/checkpoint", "asha", "")
	if a.status != 200 || a.body != "sieve.example/log\n42\nAAAA=\n" ||
		!strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") || a.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("%d %v %q", a.status, a.header, a.body)
	}
	var args []uint64
	s.audit.InclusionFn = func(i, n uint64) (any, error) { args = []uint64{i, n}; return map[string]any{"index": i}, nil }
	s.audit.ConsistencyFn = func(f, t uint64) (any, error) { args = []uint64{f, t}; return map[string]any{"to": t}, nil }
	if a := s.do(t, "GET", "/v1/audit/proof/inclusion?index=3&size=10", "asha", ""); a.status != 200 || args[0] != 3 || args[1] != 10 {
		t.Fatalf("inclusion %d %s %v", a.status, a.body, args)
	}
	if a := s.do(t, "GET", "/v1/audit/proof/consistency?from=5&to=9", "asha", ""); a.status != 200 || args[0] != 5 || args[1] != 9 {
		t.Fatalf("consistency %d %s %v", a.status, a.body, args)
	}
	for _, q := range []string{"/v1/audit/proof/inclusion?size=10", "/v1/audit/proof/inclusion?index=-1&size=10",
		"/v1/audit/proof/consistency?from=1", "/v1/audit/proof/consistency?from=1&to=99999999999999999999"} {
		if a := s.do(t, "GET", q, "asha", ""); a.status != 400 {
			t.Errorf("%s: %d %s", q, a.status, a.body)
		}
	}
	s.reports.ProcessingFn = func() (any, error) { return map[string]any{"controller": "Sieve Fresh"}, nil }
	if a := s.do(t, "GET", "/v1/reports/processing", "asha", ""); a.status != 200 || a.json(t)["controller"] != "Sieve Fresh" {
		t.Fatalf("processing %d %s", a.status, a.body)
	}
}

func TestSubjectRoutes(t *testing.T) {
	row := commerce.SubjectRow{ID: "shp_1"}
	resolve := func(wa, user string) (commerce.SubjectRow, error) {
		if wa == "919811112222" || user == "IN.1410000000000001" {
			return row, nil
		}
		return commerce.SubjectRow{}, broker.Errorf(broker.ENotFound, "subject shp_9 not found")
	}

	t.Run("disclosures are audited as the officer's action", func(t *testing.T) {
		s := newComplianceServer(t)
		s.rights.ResolveFn = resolve
		s.rights.DisclosuresFn = func(subject string) ([]commerce.Disclosure, error) {
			if subject != "shp_1" {
				t.Errorf("disclosures of %q", subject)
			}
			return nil, nil
		}
		var entries []broker.Event
		s.audit.RecordFn = func(ev broker.Event) error { entries = append(entries, ev); return nil }
		a := s.do(t, "GET", "/v1/subjects/disclosures?wa_id=919811112222", "asha", "")
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		pseudo := s.pseudo.Audit("shp_1")
		if !strings.Contains(a.body, `"disclosures":[]`) || a.json(t)["subject"] != pseudo || strings.Contains(a.body, "shp_1") {
			t.Fatalf("body %s", a.body)
		}
		if len(entries) != 1 {
			t.Fatalf("%d entries", len(entries))
		}
		e := entries[0]
		// The Recorder pseudonymises the subject and stamps the policy revision.
		if e.Actor != "officer:asha" || e.Action != "disclosures" || e.Subject != "shp_1" || e.Reason != "access_request" ||
			e.Purpose != broker.PurposeDataSubjectRequest || e.Outcome != audit.OutcomeDone || a.header.Get("X-Decision-Id") != e.DecisionID {
			t.Fatalf("entry %+v, header %q", e, a.header.Get("X-Decision-Id"))
		}
		// The same by POST, with a BSUID.
		a = s.do(t, "POST", "/v1/subjects/disclosures", "asha", `{"user_id":"IN.1410000000000001"}`)
		if a.status != 200 || len(entries) != 2 {
			t.Fatalf("POST %d %s", a.status, a.body)
		}
	})
	t.Run("an unknown shopper is a fixed not-found", func(t *testing.T) {
		s := newComplianceServer(t)
		s.rights.ResolveFn = resolve
		a := s.do(t, "GET", "/v1/subjects/disclosures?wa_id=910000000000", "asha", "")
		if a.status != 404 || strings.Contains(a.body, "shp_9") || !strings.Contains(a.body, "no shopper with that identifier") {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	t.Run("no audit entry, no answer", func(t *testing.T) {
		s := newComplianceServer(t)
		s.rights.ResolveFn = resolve
		s.rights.DisclosuresFn = func(string) ([]commerce.Disclosure, error) {
			return []commerce.Disclosure{{Party: "logistics:c1", Purpose: "order_fulfilment"}}, nil
		}
		s.audit.RecordFn = func(broker.Event) error { return errors.New("disk full") }
		a := s.do(t, "GET", "/v1/subjects/disclosures?wa_id=919811112222", "asha", "")
		if a.status != 503 || strings.Contains(a.body, "logistics:c1") {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	t.Run("export is released to the officer", func(t *testing.T) {
		s := newComplianceServer(t)
		s.rights.ResolveFn = resolve
		var to broker.Party
		s.rights.ReleaseExportFn = func(subject string, p broker.Party) (commerce.Export, broker.Decision, error) {
			to = p
			return commerce.Export{Subject: s.pseudo.Audit(subject)}, broker.Decision{ID: "dec_export"}, nil
		}
		a := s.do(t, "POST", "/v1/subjects/export", "asha", `{"wa_id":"919811112222"}`)
		if a.status != 200 || a.header.Get("X-Decision-Id") != "dec_export" ||
			!strings.Contains(a.header.Get("Content-Disposition"), "subject-export.json") || to.ID != "asha" || to.Kind != broker.KindOfficer {
			t.Fatalf("%d %v %s (to %+v)", a.status, a.header, a.body, to)
		}
		if m := s.officers.mutating; len(m) == 0 || !m[len(m)-1] {
			t.Fatalf("a POST did not ask for a mutating session: %v", m)
		}
		// A denied export still names its decision.
		s.rights.ReleaseExportFn = func(string, broker.Party) (commerce.Export, broker.Decision, error) {
			return commerce.Export{}, broker.Decision{ID: "dec_denied"}, broker.Errorf(broker.EDenied, "restricted")
		}
		a = s.do(t, "POST", "/v1/subjects/export", "asha", `{"wa_id":"919811112222"}`)
		if a.status != 403 || a.header.Get("X-Decision-Id") != "dec_denied" {
			t.Fatalf("denied %d %v %s", a.status, a.header, a.body)
		}
		if a := s.do(t, "POST", "/v1/subjects/export", "asha", `{"wa_id":"919811112222","extra":1}`); a.status != 400 {
			t.Fatalf("unknown field accepted: %d", a.status)
		}
		if a := s.do(t, "POST", "/v1/subjects/export", "", `{"wa_id":"919811112222"}`); a.status != 401 {
			t.Fatalf("anonymous export: %d", a.status)
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
				s := newComplianceServer(t)
				s.rights.ResolveFn = resolve
				called := ""
				s.rights.EraseFn = func(subject string, actor broker.Party, reason string) error {
					if subject != "shp_1" || actor.ID != "asha" {
						t.Errorf("erase %q by %+v", subject, actor)
					}
					called = reason
					return nil
				}
				a := s.do(t, "POST", "/v1/subjects/erase", "asha", tc.body)
				if a.status != tc.status || called != tc.reason {
					t.Fatalf("%d %s, erased with %q; want %d, %q", a.status, a.body, called, tc.status, tc.reason)
				}
				if tc.status == 200 && (a.json(t)["status"] != "erased" || a.json(t)["subject"] != s.pseudo.Audit("shp_1")) {
					t.Fatalf("body %s", a.body)
				}
			})
		}
	})
}
