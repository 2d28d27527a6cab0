package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/httpapi/httpapitest"
)

// The compliance API's handlers against small fakes of their ports, with no
// database (as wtf's http/server_test.go does): each fake has a func field
// per method, which the test sets for what it wants to see.

type fakeReports struct{ ProcessingFn func() (any, error) }

func (r *fakeReports) Processing(context.Context) (any, error) { return r.ProcessingFn() }

// complianceServer is a Server over fresh fakes; each test sets the funcs it
// expects to be called (an unset one panics, which the recover middleware
// turns into a 500, so an unexpected call fails the test).
type complianceServer struct {
	*httpapi.Server
	audit    *httpapitest.Audit
	reports  *fakeReports
	officers *httpapitest.Officers
}

func newComplianceServer(t *testing.T) *complianceServer {
	t.Helper()
	s := &complianceServer{audit: &httpapitest.Audit{}, reports: &fakeReports{}, officers: &httpapitest.Officers{}}
	s.Server = httpapi.New(httpapi.Config{}, httpapi.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Audit: s.audit, Reports: s.reports, Officers: s.officers})
	return s
}

// do sends a request as officer (none when "").
func (s *complianceServer) do(t *testing.T, method, target, officer, body string) httpapitest.Answer {
	t.Helper()
	return httpapitest.Do(t, s.App, method, target, httpapitest.Request{Officer: officer}, body)
}

func TestAuditEntries(t *testing.T) {
	t.Run("needs an officer or a token", func(t *testing.T) {
		s := newComplianceServer(t)
		if a := s.do(t, "GET", "/v1/audit/entries", "", ""); a.Status != 401 || a.ErrorCode(t) != broker.EUnauthorized {
			t.Fatalf("%d %s", a.Status, a.Body)
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
		if a.Status != 200 {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		if got.Subject != "sub_X" || got.Actor != "logistics:c1" || got.Purpose != "order_fulfilment" ||
			got.Outcome != "denied" || got.Action != "release" || got.From.Year() != 2026 || !got.To.IsZero() ||
			cursor != "abc" || limit != 20 {
			t.Fatalf("port got %+v %q %d", got, cursor, limit)
		}
		m := a.JSON(t)
		if m["next_cursor"] != "next-2" || len(m["entries"].([]any)) != 1 {
			t.Fatalf("body %s", a.Body)
		}
		if len(s.officers.Mutating) != 1 || s.officers.Mutating[0] {
			t.Fatalf("a GET asked for a mutating session: %v", s.officers.Mutating)
		}
	})
	t.Run("an empty page is a list and no cursor", func(t *testing.T) {
		s := newComplianceServer(t)
		s.audit.EntriesFn = func(broker.AuditFilter, string, int) ([]audit.Entry, string, error) { return nil, "", nil }
		a := s.do(t, "GET", "/v1/audit/entries", "asha", "")
		if a.Status != 200 || !strings.Contains(a.Body, `"entries":[]`) || !strings.Contains(a.Body, `"next_cursor":null`) {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
	})
	for _, q := range []string{"limit=0", "limit=501", "limit=ten", "from=yesterday", "to=2026-01-02",
		"subject=" + strings.Repeat("x", 101), "cursor=" + strings.Repeat("c", 201)} {
		t.Run("refuses "+q[:min(len(q), 20)], func(t *testing.T) {
			s := newComplianceServer(t) // EntriesFn unset: reaching the port is a 500
			if a := s.do(t, "GET", "/v1/audit/entries?"+q, "asha", ""); a.Status != 400 || a.ErrorCode(t) != broker.EInvalid {
				t.Fatalf("%d %s", a.Status, a.Body)
			}
		})
	}
	t.Run("errors map through the one table, internal text never leaks", func(t *testing.T) {
		s := newComplianceServer(t)
		s.audit.EntriesFn = func(broker.AuditFilter, string, int) ([]audit.Entry, string, error) {
			return nil, "", broker.Errorf(broker.EUnavailable, "database unavailable")
		}
		if a := s.do(t, "GET", "/v1/audit/entries", "asha", ""); a.Status != 503 || a.ErrorCode(t) != broker.EUnavailable {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		s.audit.EntriesFn = func(broker.AuditFilter, string, int) ([]audit.Entry, string, error) {
			return nil, "", errors.New(`pq: relation "audit_log" does not exist`)
		}
		a := s.do(t, "GET", "/v1/audit/entries", "asha", "")
		if a.Status != 500 || strings.Contains(a.Body, "audit_log") {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
	})
}

func TestAuditCheckpointAndProofs(t *testing.T) {
	s := newComplianceServer(t)
	s.audit.CheckpointFn = func() (string, error) { return "sieve.example/log\n42\nAAAA=\n", nil }
	a := s.do(t, "GET", "/v1/audit/checkpoint", "asha", "")
	if a.Status != 200 || a.Body != "sieve.example/log\n42\nAAAA=\n" ||
		!strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") || a.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("%d %v %q", a.Status, a.Header, a.Body)
	}
	var args []uint64
	s.audit.InclusionFn = func(i, n uint64) (any, error) { args = []uint64{i, n}; return map[string]any{"index": i}, nil }
	s.audit.ConsistencyFn = func(f, t uint64) (any, error) { args = []uint64{f, t}; return map[string]any{"to": t}, nil }
	if a := s.do(t, "GET", "/v1/audit/proof/inclusion?index=3&size=10", "asha", ""); a.Status != 200 || args[0] != 3 || args[1] != 10 {
		t.Fatalf("inclusion %d %s %v", a.Status, a.Body, args)
	}
	if a := s.do(t, "GET", "/v1/audit/proof/consistency?from=5&to=9", "asha", ""); a.Status != 200 || args[0] != 5 || args[1] != 9 {
		t.Fatalf("consistency %d %s %v", a.Status, a.Body, args)
	}
	for _, q := range []string{"/v1/audit/proof/inclusion?size=10", "/v1/audit/proof/inclusion?index=-1&size=10",
		"/v1/audit/proof/consistency?from=1", "/v1/audit/proof/consistency?from=1&to=99999999999999999999"} {
		if a := s.do(t, "GET", q, "asha", ""); a.Status != 400 {
			t.Errorf("%s: %d %s", q, a.Status, a.Body)
		}
	}
	s.reports.ProcessingFn = func() (any, error) { return map[string]any{"controller": "Sieve Fresh"}, nil }
	if a := s.do(t, "GET", "/v1/reports/processing", "asha", ""); a.Status != 200 || a.JSON(t)["controller"] != "Sieve Fresh" {
		t.Fatalf("processing %d %s", a.Status, a.Body)
	}
}
