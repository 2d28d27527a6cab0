package ui

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

var entryTime = time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)

func entry(actor, action, purpose, subject, outcome string) audit.Entry {
	e := audit.Entry{Time: entryTime, DecisionID: "dec_" + randomToken()[:12], Actor: actor, Action: action,
		Purpose: purpose, Subject: subject, Resource: "order:ord_1", Outcome: outcome, PolicyRevision: "rev123"}
	if outcome == "released" || outcome == "partial" {
		e.Released = []string{"order.id", "customer.ref"}
	}
	if outcome != "released" && action == "release" {
		e.Withheld = []string{"customer.phone"}
	}
	return e
}

// signedIn is a harness with a session.
type signedIn struct {
	*harness
	sess *http.Cookie
	csrf string
}

func newSignedIn(t *testing.T) signedIn {
	h := newHarness(t)
	sess, csrf := h.login(testOfficer, testPassword)
	return signedIn{h, sess, csrf}
}

func (s signedIn) get(path string) response {
	s.t.Helper()
	return s.do("GET", path, nil, []*http.Cookie{s.sess}, nil)
}

func TestPagesRender(t *testing.T) {
	s := newSignedIn(t)
	s.log.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"),
		entry("logistics:cli_couriers", "release", "delivery", "sub_A", "denied"))
	s.log.publish(t)
	s.log.counts = []broker.AuditCount{
		{Bucket: s.clock.Now().Add(-2 * time.Hour).Truncate(time.Hour), Actor: "retailer:cli_fresh", Purpose: "order_fulfilment", Outcome: "released", Count: 7},
		{Bucket: s.clock.Now().Add(-time.Hour).Truncate(time.Hour), Actor: "logistics:cli_couriers", Purpose: "delivery", Outcome: "denied", Count: 2},
		{Bucket: s.clock.Now().Truncate(time.Hour), Actor: "officer:off_asha", Purpose: string(purposeAccess), Outcome: "done", Count: 1},
	}
	s.log.flows = []broker.ReleasedCell{
		{Actor: "retailer:cli_fresh", Field: "order.id", Purpose: "order_fulfilment", Count: 7, First: entryTime, Last: entryTime},
		{Actor: "retailer:cli_fresh", Field: "customer.phone", Purpose: "order_fulfilment", Count: 1, First: entryTime, Last: entryTime},
	}
	tests := []struct {
		path string
		want []string
	}{
		{"/ui/overview", []string{"Releases and denials per hour", `id="total-released">7<`, `id="total-denied">2<`,
			"Fresh Mart (retailer)", `<svg class="chart"`, `<svg class="spark"`, "✓ verified"}},
		{"/ui/overview?range=1h", []string{"per 2 minutes"}},
		{"/ui/overview?range=30d", []string{"per day"}},
		{"/ui/audit", []string{`data-index="1"`, `data-index="0"`, "Quick Couriers (logistics)", `href="/ui/audit/1"`}},
		{"/ui/flows", []string{"order.id", "customer.phone", "⚠ 1", "would no longer allow"}},
		{"/ui/policies", []string{`id="policy-revision">rev123<`, "order fulfilment", "pseudonym", "1095 days",
			"customer.phone", "withheld"}},
		{"/ui/subjects", []string{`name="wa_id"`, `action="/ui/subjects/lookup"`, `method="post"`}},
		{"/ui/reports", []string{"Record of processing activities", `href="/v1/reports/processing"`, "sealed at rest"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := s.get(tc.path)
			if r.status != 200 {
				t.Fatalf("status %d\n%s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Contains(r.body, "<script") || strings.Contains(r.body, "http://") || strings.Contains(r.body, "https://") {
				t.Error("page loads a script or something from elsewhere")
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newSignedIn(t)
	for _, path := range []string{"/ui/login", "/ui/overview", "/ui/nowhere"} {
		t.Run(path, func(t *testing.T) {
			r := s.get(path)
			for h, want := range map[string]string{
				"Content-Security-Policy": "default-src 'none'; style-src 'self'",
				"X-Frame-Options":         "DENY",
				"X-Content-Type-Options":  "nosniff",
				"Cache-Control":           "no-store",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := r.header.Get(h); !strings.HasPrefix(got, want) {
					t.Errorf("%s = %q, want %q…", h, got, want)
				}
			}
		})
	}
}

func TestStaticAssets(t *testing.T) {
	s := newSignedIn(t)
	page := s.get("/ui/overview").body
	m := regexp.MustCompile(`href="(/ui/static/style\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no versioned stylesheet link")
	}
	tests := []struct {
		name, path string
		status     int
		cache      string
	}{
		{"versioned", m[1], 200, "public, max-age=31536000, immutable"},
		{"unversioned", "/ui/static/style.css", 200, "no-cache"},
		{"missing", "/ui/static/nope.js", 404, "no-store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do("GET", tc.path, nil, nil, nil)
			if r.status != tc.status || r.header.Get("Cache-Control") != tc.cache {
				t.Errorf("%d %q, want %d %q", r.status, r.header.Get("Cache-Control"), tc.status, tc.cache)
			}
		})
	}
}

func TestUnknownRoutes(t *testing.T) {
	s := newSignedIn(t)
	tests := []struct {
		name, method, path string
		status             int
		allow              string
		json               bool
	}{
		{"unknown page", "GET", "/ui/nowhere", 404, "", false},
		{"wrong method", "GET", "/ui/logout", 405, "POST", false},
		{"wrong method on a page", "DELETE", "/ui/audit", 405, "GET", false},
		{"not the dashboard", "GET", "/uix", 404, "", true},
		{"API stays JSON", "GET", "/v1/nowhere", 404, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(tc.method, tc.path, nil, []*http.Cookie{s.sess}, nil)
			if r.status != tc.status || r.header.Get("Allow") != tc.allow {
				t.Errorf("%d Allow %q, want %d %q", r.status, r.header.Get("Allow"), tc.status, tc.allow)
			}
			if isJSON := strings.HasPrefix(r.header.Get("Content-Type"), "application/json"); isJSON != tc.json {
				t.Errorf("Content-Type %q, want JSON %v", r.header.Get("Content-Type"), tc.json)
			}
		})
	}
}

func TestExplorerFilters(t *testing.T) {
	s := newSignedIn(t)
	s.log.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"),
		entry("retailer:cli_fresh", "release", "marketing", "sub_B", "denied"),
		entry("logistics:cli_couriers", "release", "delivery", "sub_A", "released"))
	tests := []struct {
		name    string
		query   string
		status  int
		want    broker.AuditFilter
		rows    []string // data-index values shown
		absent  []string // text the page must not show
		message string
	}{
		// Entry 0 is the officer's sign-in, at 10:00.
		{name: "no filter", query: "", status: 200, rows: []string{"3", "2", "1", "0"}},
		{name: "partner", query: "partner=retailer:cli_fresh", status: 200,
			want: broker.AuditFilter{Actor: "retailer:cli_fresh"}, rows: []string{"2", "1"}},
		{name: "purpose and outcome", query: "purpose=marketing&outcome=denied", status: 200,
			want: broker.AuditFilter{Purpose: "marketing", Outcome: "denied"}, rows: []string{"2"}},
		{name: "subject", query: "subject=sub_A", status: 200, want: broker.AuditFilter{Subject: "sub_A"}, rows: []string{"3", "1"}},
		{name: "time range", query: "from=2026-11-21T09:00&to=2026-11-21T10:00:00Z", status: 200,
			want: broker.AuditFilter{From: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)},
			rows: []string{"3", "2", "1"}},
		{name: "a phone number as subject is refused and not echoed", query: "subject=%2B919811112222", status: 400,
			absent: []string{"919811112222"}, message: "use the Subject desk"},
		{name: "unknown outcome", query: "outcome=maybe", status: 400, absent: []string{"maybe"}, message: "Choose the outcome"},
		{name: "bad time", query: "from=yesterday", status: 400, absent: []string{"yesterday"}, message: "Times are dates"},
		{name: "inverted range", query: "from=2026-11-21T10:00&to=2026-11-21T09:00", status: 400, message: "must be before"},
		{name: "markup in a filter", query: "partner=%3Cscript%3E", status: 400, absent: []string{"<script>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.log.lastFilter = broker.AuditFilter{Action: "unset"}
			r := s.get("/ui/audit?" + tc.query)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tc.status, r.body)
			}
			if tc.status == 200 && s.log.lastFilter != tc.want {
				t.Errorf("filter %+v, want %+v", s.log.lastFilter, tc.want)
			}
			var rows []string
			for _, m := range regexp.MustCompile(`data-index="(\d+)"`).FindAllStringSubmatch(r.body, -1) {
				rows = append(rows, m[1])
			}
			if strings.Join(rows, ",") != strings.Join(tc.rows, ",") {
				t.Errorf("rows %v, want %v", rows, tc.rows)
			}
			for _, a := range tc.absent {
				if strings.Contains(r.body, a) {
					t.Errorf("page shows %q", a)
				}
			}
			if !strings.Contains(r.body, tc.message) {
				t.Errorf("page lacks %q", tc.message)
			}
		})
	}
}

func TestExplorerPagination(t *testing.T) {
	s := newSignedIn(t)
	for range pageSize + 5 {
		s.log.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"))
	}
	first := s.get("/ui/audit?purpose=order_fulfilment")
	m := regexp.MustCompile(`href="(/ui/audit\?[^"]*cursor=[^"]*)" id="next-page"`).FindStringSubmatch(first.body)
	if m == nil {
		t.Fatalf("no next page link")
	}
	next := strings.ReplaceAll(m[1], "&amp;", "&")
	if !strings.Contains(next, "purpose=order_fulfilment") {
		t.Errorf("next link %q drops the filter", next)
	}
	second := s.get(next)
	n := strings.Count(second.body, `class="entry"`)
	if n != 5 || strings.Contains(second.body, `id="next-page"`) || !strings.Contains(second.body, "← Newest") {
		t.Errorf("second page: %d rows (want 5), next link %v", n, strings.Contains(second.body, `id="next-page"`))
	}
	if r := s.get("/ui/audit?cursor=" + strings.Repeat("x", 201)); r.status != 400 {
		t.Errorf("overlong cursor: %d, want 400", r.status)
	}
}

func TestEntryProof(t *testing.T) {
	tests := []struct {
		name    string
		entries int
		index   string
		publish bool
		tamper  func(l *memLog)
		status  int
		want    []string
	}{
		{name: "verified", entries: 5, index: "3", publish: true, status: 200,
			want: []string{"verified ✓", `id="proof-hashes"`, "Tree size"}},
		{name: "single entry", entries: 1, index: "0", publish: true, status: 200, want: []string{"verified ✓", "the leaf hash is the root"}},
		{name: "not yet checkpointed", entries: 3, index: "2", publish: false, status: 200, want: []string{"pending…"}},
		{name: "stored leaf differs", entries: 4, index: "1", publish: true, status: 200,
			tamper: func(l *memLog) { l.badLeaf[1] = true }, want: []string{"✗ proof failed", "the log holds leaf hash"}},
		{name: "forged checkpoint", entries: 4, index: "1", publish: true, status: 200,
			tamper: func(l *memLog) { l.lie = strings.Replace(l.notes[l.latest], "\n4\n", "\n5\n", 1) },
			want:   []string{"✗ cannot verify", "signature check failed"}},
		{name: "no such entry", entries: 2, index: "9", publish: true, status: 404, want: []string{"no entry 9"}},
		{name: "not a number", entries: 2, index: "x", publish: true, status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSignedIn(t)
			s.log.entries, s.log.hashes = nil, nil // forget the sign-in: indexes as in the table
			for range tc.entries {
				s.log.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"))
			}
			if tc.publish {
				s.log.publish(t)
			}
			if tc.tamper != nil {
				tc.tamper(s.log)
			}
			r := s.get("/ui/audit/" + tc.index)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tc.status, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("page lacks %q:\n%s", w, r.body)
				}
			}
			if tc.name == "not yet checkpointed" && r.header.Get("Refresh") == "" {
				t.Error("a pending proof page does not refresh itself")
			}
		})
	}
}

func TestWitness(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	grow := func(l *memLog, n int) {
		for range n {
			l.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"))
		}
	}
	tests := []struct {
		name string
		// steps run in order; each returns whether the check must pass.
		steps []func(t *testing.T, l *memLog) bool
		want  string // in the last status's error
	}{
		{name: "empty log", steps: []func(*testing.T, *memLog) bool{
			func(*testing.T, *memLog) bool { return true },
		}},
		{name: "growing log stays consistent", steps: []func(*testing.T, *memLog) bool{
			func(t *testing.T, l *memLog) bool { grow(l, 3); l.publish(t); return true },
			func(t *testing.T, l *memLog) bool { grow(l, 10); l.publish(t); return true },
			func(t *testing.T, l *memLog) bool { return true },
			func(t *testing.T, l *memLog) bool { grow(l, 1); l.publish(t); return true },
		}},
		{name: "rewritten history", want: "not consistent", steps: []func(*testing.T, *memLog) bool{
			func(t *testing.T, l *memLog) bool { grow(l, 4); l.publish(t); return true },
			func(t *testing.T, l *memLog) bool {
				// Rewrite entry 1 and re-sign a longer tree.
				e := l.entries[1]
				e.Outcome = "denied"
				leaf, _ := e.Canonical()
				l.entries[1], l.hashes[1] = e, audit.LeafHash(leaf)
				grow(l, 2)
				l.publish(t)
				return false
			},
			func(t *testing.T, l *memLog) bool { return false }, // and it stays flagged
		}},
		{name: "same size, other root", want: "two different roots", steps: []func(*testing.T, *memLog) bool{
			func(t *testing.T, l *memLog) bool { grow(l, 2); l.publish(t); return true },
			func(t *testing.T, l *memLog) bool {
				l.hashes[0] = audit.LeafHash([]byte("other"))
				l.publish(t)
				return false
			},
		}},
		{name: "shrinking log", want: "shrank", steps: []func(*testing.T, *memLog) bool{
			func(t *testing.T, l *memLog) bool { grow(l, 5); l.publish(t); return true },
			func(t *testing.T, l *memLog) bool {
				l.entries, l.hashes = l.entries[:3], l.hashes[:3]
				l.publish(t)
				return false
			},
		}},
		{name: "checkpoint signed by another key", want: "signature check failed", steps: []func(*testing.T, *memLog) bool{
			func(t *testing.T, l *memLog) bool {
				grow(l, 2)
				other := newMemLog(t)
				other.entries, other.hashes = l.entries, l.hashes
				other.publish(t)
				l.lie = other.notes[2]
				return false
			},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newMemLog(t)
			w := &witness{}
			var st CheckStatus
			for i, step := range tc.steps {
				wantOK := step(t, l)
				st = w.check(ctx, l, l.publicKeys(), now)
				if st.OK != wantOK {
					t.Fatalf("step %d: OK = %v (%s), want %v", i, st.OK, st.Error, wantOK)
				}
			}
			if !strings.Contains(st.Error, tc.want) {
				t.Errorf("error %q, want it to mention %q", st.Error, tc.want)
			}
		})
	}
}

func TestAuditCSV(t *testing.T) {
	s := newSignedIn(t)
	s.log.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_A", "released"),
		entry("retailer:cli_fresh", "release", "marketing", "sub_B", "denied"))
	r := s.get("/ui/reports/audit.csv?outcome=denied&subject=sub_B")
	if r.status != 200 || r.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(r.header.Get("Content-Disposition"), `attachment; filename="sieve-audit-`) {
		t.Fatalf("%d %v", r.status, r.header)
	}
	if s.log.lastFilter != (broker.AuditFilter{Outcome: "denied", Subject: "sub_B"}) {
		t.Errorf("filter %+v", s.log.lastFilter)
	}
	if !strings.Contains(r.body, "retailer:cli_fresh,release,sub_B,denied") || strings.Contains(r.body, "sub_A") {
		t.Errorf("CSV:\n%s", r.body)
	}
	// The export itself is audited, under the filter's subject.
	var found bool
	for _, a := range s.log.actions() {
		found = found || a == "officer:off_asha export_audit done"
	}
	if !found {
		t.Errorf("export not audited: %v", s.log.actions())
	}
	if bad := s.get("/ui/reports/audit.csv?subject=919811112222"); bad.status != 400 || strings.Contains(bad.body, "919811112222") {
		t.Errorf("CSV with a phone number as subject: %d", bad.status)
	}
}

func TestSubjectDeskNeedsRights(t *testing.T) {
	// Without Rights the desk says so, after the CSRF check.
	s := newSignedIn(t)
	r := s.do("POST", "/ui/subjects/lookup", url.Values{csrfField: {s.csrf}, "wa_id": {"919811112222"}},
		[]*http.Cookie{s.sess}, nil)
	if r.status != fiber.StatusNotFound || !strings.Contains(r.body, "not configured") || strings.Contains(r.body, "919811112222") {
		t.Errorf("%d\n%s", r.status, r.body)
	}
}

func TestPoliciesMatrix(t *testing.T) {
	s := newSignedIn(t)
	r := s.get("/ui/policies")
	row := func(field string) string {
		m := regexp.MustCompile(`(?s)<tr( class="withheld-row")?>\s*<th scope="row"[^>]*><code>` + regexp.QuoteMeta(field) + `</code>.*?</tr>`).FindString(r.body)
		if m == "" {
			t.Fatalf("no row for %s", field)
		}
		return m
	}
	tests := []struct {
		field    string
		withheld bool
		chips    []string
	}{
		{"order.id", false, []string{"keep"}},
		{"customer.ref", false, []string{"pseudonym"}},
		{"customer.phone", true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			got := row(tc.field)
			if strings.Contains(got, "withheld-row") != tc.withheld {
				t.Errorf("row %s: withheld %v, want %v", got, !tc.withheld, tc.withheld)
			}
			for _, c := range tc.chips {
				if !strings.Contains(got, `class="chip t-`+c+`"`) {
					t.Errorf("row %s lacks the %s transform", got, c)
				}
			}
			if tc.withheld && strings.Contains(got, "chip t-") {
				t.Errorf("withheld row %s shows a transform", got)
			}
		})
	}
	if !strings.Contains(r.body, `<th colspan="1" class="group">order fulfilment</th>`) || !strings.Contains(r.body, `title="needs orders:read">retailer</th>`) {
		t.Errorf("the matrix header lacks the purpose or the party kind with its scopes")
	}
}
