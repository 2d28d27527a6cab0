package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// hostileCase is one malformed or malicious request of the corpus in
// testdata/hostile/*.json.
type hostileCase struct {
	Name   string `json:"name"`
	Method string `json:"method"`
	// Path is sent verbatim (no cleaning, no re-escaping) after the
	// placeholders are replaced: {order} (the placed order's id), {wa} (the
	// shopper's number), {retailer_id}, {retailer_basic} (base64 of
	// id:secret), {retailer_secret}, {long:N} (N letters "a").
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"` // placeholders as in Path
	// The body: Body (placeholders replaced), or BodyB64 (raw bytes, for
	// invalid UTF-8 and compressed bodies), or BodyParts (generated, for
	// big or deeply nested bodies).
	Body      *string    `json:"body"`
	BodyB64   string     `json:"body_b64"`
	BodyParts []bodyPart `json:"body_parts"`
	// Auth selects the bearer token: none, garbage, retailer, retailer_ro,
	// other_retailer, logistics, datareq, compliance, or jwt:<attack name>
	// (from jwtAttacks). A Headers Authorization wins over it.
	Auth string `json:"auth"`
	// Sign signs a webhook body: "valid" (the app secret over the body as
	// sent), "replayed" (a genuine signature of another notification),
	// "other_secret"; empty sends no signature unless Headers has one.
	Sign string `json:"sign"`
	// Expect is a status ("401"), a list ("413,415") or a class ("4xx").
	Expect string `json:"expect"`
	// Shape is the error body: json (default), oauth (RFC 6749 §5.2),
	// html (a dashboard page), redirect (to the dashboard sign-in) or none
	// (HEAD: no body to check).
	Shape string `json:"shape"`
}

// bodyPart is Text repeated Repeat times (once when 0).
type bodyPart struct {
	Text   string `json:"text"`
	Repeat int    `json:"repeat"`
}

func loadHostileCorpus(t *testing.T) (map[string][]hostileCase, int) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata/hostile: %v", err)
	}
	out := map[string][]hostileCase{}
	n := 0
	names := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var cases []hostileCase
		if err := dec.Decode(&cases); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		group := strings.TrimSuffix(filepath.Base(f), ".json")
		for _, c := range cases {
			key := group + "/" + c.Name
			switch {
			case c.Name == "" || c.Method == "" || c.Path == "" || c.Expect == "":
				t.Fatalf("%s: a case lacks name, method, path or expect: %+v", f, c)
			case names[key]:
				t.Fatalf("%s: duplicate case name %q", f, c.Name)
			case !slices.Contains([]string{"", "json", "oauth", "html", "redirect", "none"}, c.Shape):
				t.Fatalf("%s: %s: unknown shape %q", f, c.Name, c.Shape)
			}
			names[key] = true
		}
		out[group] = cases
		n += len(cases)
	}
	return out, n
}

// hostileEnv is the live data the corpus refers to.
type hostileEnv struct {
	h        *harness
	order    string
	wa       string
	retailer creds
	tokens   map[string]string // auth name → Authorization value
	replayed string            // a genuine signature of another notification
}

var longRe = regexp.MustCompile(`\{long:(\d+)\}`)

func (e *hostileEnv) expand(s string) string {
	s = longRe.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.Atoi(longRe.FindStringSubmatch(m)[1])
		return strings.Repeat("a", n)
	})
	return strings.NewReplacer("{order}", e.order, "{wa}", e.wa, "{retailer_id}", e.retailer.ID,
		"{retailer_secret}", e.retailer.Secret,
		"{retailer_basic}", base64.StdEncoding.EncodeToString([]byte(e.retailer.ID+":"+e.retailer.Secret))).Replace(s)
}

func (e *hostileEnv) body(t *testing.T, c hostileCase) []byte {
	t.Helper()
	switch {
	case c.Body != nil:
		return []byte(e.expand(*c.Body))
	case c.BodyB64 != "":
		b, err := base64.StdEncoding.DecodeString(c.BodyB64)
		if err != nil {
			t.Fatalf("body_b64: %v", err)
		}
		return b
	case c.BodyParts != nil:
		var buf bytes.Buffer
		for _, p := range c.BodyParts {
			buf.WriteString(strings.Repeat(e.expand(p.Text), max(p.Repeat, 1)))
		}
		return buf.Bytes()
	}
	return nil
}

// request builds the case's request, sending the path verbatim.
func (e *hostileEnv) request(t *testing.T, c hostileCase) *http.Request {
	t.Helper()
	body := e.body(t, c)
	u, _ := url.Parse(e.h.base)
	u.Opaque = e.expand(c.Path) // the request line carries it as is
	req, err := http.NewRequest(c.Method, e.h.base, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if c.Auth != "" && c.Auth != "none" {
		authz, ok := e.tokens[c.Auth]
		if !ok {
			t.Fatalf("unknown auth %q", c.Auth)
		}
		req.Header.Set("Authorization", authz)
	}
	switch c.Sign {
	case "":
	case "valid":
		req.Header.Set("X-Hub-Signature-256", whatsapp.Sign([]byte(whatsapp.DevAppSecret), body))
	case "other_secret":
		req.Header.Set("X-Hub-Signature-256", whatsapp.Sign([]byte("not-the-app-secret"), body))
	case "replayed":
		req.Header.Set("X-Hub-Signature-256", e.replayed)
	default:
		t.Fatalf("unknown sign %q", c.Sign)
	}
	for k, v := range c.Headers {
		v = e.expand(v)
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req
}

// sendDeclaredFirst sends a request whose body is over the server-wide
// limit: the headers first, so that the server can refuse the declared
// length before any of the body is sent (a server that closes the
// connection while the client is still writing would otherwise reset it
// and lose the answer); the body only if the server waits for it.
func sendDeclaredFirst(t *testing.T, req *http.Request) answer {
	t.Helper()
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n",
		req.Method, req.URL.Opaque, req.URL.Host, req.ContentLength)
	req.Header.Write(&head) //nolint:errcheck
	head.WriteString("\r\n")
	if _, err := conn.Write(head.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck
	if _, err := br.Peek(1); err != nil {
		// No early answer: send the body and read the answer to it.
		conn.SetReadDeadline(time.Time{}) //nolint:errcheck
		go io.Copy(conn, req.Body)        //nolint:errcheck
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("%s %.80s: %v", req.Method, req.URL.Opaque, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// statusOK tells whether status satisfies expect ("401", "413,415", "4xx").
func statusOK(expect string, status int) bool {
	for _, e := range strings.Split(expect, ",") {
		e = strings.TrimSpace(e)
		if len(e) == 3 && strings.HasSuffix(e, "xx") {
			if strconv.Itoa(status)[0] == e[0] {
				return true
			}
			continue
		}
		if n, err := strconv.Atoi(e); err == nil && n == status {
			return true
		}
	}
	return false
}

// leakMarkers must never appear in an error answer: stack traces, Go
// source positions, SQL errors.
var leakMarkers = []string{"goroutine ", "panic", "runtime error", ".go:", "SQLSTATE", "pgconn", "pgx:", "syntax error at"}

// checkHostileAnswer reports everything wrong with an answer to c.
func (e *hostileEnv) checkHostileAnswer(c hostileCase, a answer) []string {
	var probs []string
	if a.status >= 500 {
		probs = append(probs, fmt.Sprintf("server error %d", a.status))
	}
	if !statusOK(c.Expect, a.status) {
		probs = append(probs, fmt.Sprintf("status %d, want %s", a.status, c.Expect))
	}
	switch c.Shape {
	case "", "json":
		if msg := checkJSONError(a); msg != "" {
			probs = append(probs, "JSON error shape: "+msg)
		}
		if a.status == 401 && strings.HasPrefix(c.Path, "/v1/") && a.header.Get("WWW-Authenticate") == "" {
			probs = append(probs, "401 without WWW-Authenticate")
		}
		if a.status == 405 && a.header.Get("Allow") == "" {
			probs = append(probs, "405 without Allow")
		}
	case "oauth":
		if msg := checkOAuthError(a); msg != "" {
			probs = append(probs, "RFC 6749 error shape: "+msg)
		}
		if a.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			probs = append(probs, "invalid_client without WWW-Authenticate (RFC 6749 §5.2)")
		}
	case "html":
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || len(a.body) == 0 {
			probs = append(probs, "not an HTML page: Content-Type "+ct)
		}
	case "redirect":
		if loc := a.header.Get("Location"); a.status/100 != 3 || !strings.HasPrefix(loc, "/ui/login") {
			probs = append(probs, fmt.Sprintf("not a redirect to the sign-in page: %d Location %q", a.status, loc))
		}
	}
	low := strings.ToLower(string(a.body))
	for _, m := range leakMarkers {
		if strings.Contains(low, strings.ToLower(m)) {
			probs = append(probs, fmt.Sprintf("the answer contains %q", m))
		}
	}
	for _, s := range []string{e.wa, "Asha Verma", e.retailer.Secret} {
		if strings.Contains(string(a.body), s) {
			probs = append(probs, fmt.Sprintf("the answer reveals %q", s))
		}
	}
	return probs
}

// dbSnapshot is every row of every table (as text), except the audit
// tables, which are compared separately since refusals are audited.
type dbSnapshot struct {
	rows      map[string][]string
	auditSize int
	auditHash []byte // leaf hashes of the entries that existed
}

// auditDerived are the tables that follow the audit log: they may change
// when refusals are appended, and the log itself is checked entry by entry.
var auditDerived = []string{"audit_log", "audit_pending", "audit_nodes", "audit_tree", "audit_checkpoints", "audit_counts"}

func snapshot(t *testing.T, h *harness) dbSnapshot {
	t.Helper()
	ctx := context.Background()
	waitAuditSequenced(t, h)
	rows, err := h.m.Sys.DB.Pool.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	s := dbSnapshot{rows: map[string][]string{}}
	for _, tbl := range tables {
		if slices.Contains(auditDerived, tbl) {
			continue
		}
		r, err := h.m.Sys.DB.Pool.Query(ctx, `SELECT t::text FROM `+tbl+` t`)
		if err != nil {
			t.Fatal(err)
		}
		all, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(all)
		s.rows[tbl] = all
	}
	if err := h.m.Sys.DB.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sha256(string_agg(leaf_hash, '' ORDER BY idx)), '')
		FROM audit_entries`).Scan(&s.auditSize, &s.auditHash); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitAuditSequenced waits until every pending audit entry is in the log.
func waitAuditSequenced(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.count(`SELECT count(*) FROM audit_pending`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("audit entries stay pending")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// diffRows lists rows only in a and only in b.
func diffRows(a, b []string) (gone, added []string) {
	inA, inB := map[string]int{}, map[string]int{}
	for _, r := range a {
		inA[r]++
	}
	for _, r := range b {
		inB[r]++
	}
	for _, r := range a {
		if inB[r] == 0 {
			gone = append(gone, r)
		}
	}
	for _, r := range b {
		if inA[r] == 0 {
			added = append(added, r)
		}
	}
	return gone, added
}

// TestHostileCorpus sends every case of testdata/hostile to a broker that
// holds a completed purchase and several partners. Every answer must be
// the expected 4xx in the right error shape, never a 5xx; afterwards the
// database must hold exactly what it held before, except refusal entries
// appended to the audit log, and no shopper may have been messaged.
func TestHostileCorpus(t *testing.T) {
	corpus, total := loadHostileCorpus(t)
	if total < 200 {
		t.Errorf("the corpus has %d cases, want at least 200", total)
	}
	logs := &lockedBuffer{}
	h := newHarnessWith(t, harnessOpts{log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	env := &hostileEnv{h: h, wa: "919811160001", tokens: map[string]string{"garbage": "Bearer gArBaGe-not-a-jwt"}}
	env.retailer = h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}})
	for name, spec := range map[string]token.PartnerSpec{
		"retailer_ro":    {Name: "Reader", Kind: broker.KindRetailer, Store: "997", Scopes: []string{"orders:read"}},
		"other_retailer": {Name: "Other Mart", Kind: broker.KindRetailer, Store: "999", Scopes: []string{"orders:read", "orders:write"}},
		"logistics":      {Name: "Couriers", Kind: broker.KindLogistics, Scopes: []string{"delivery:read", "delivery:message"}},
		"datareq":        {Name: "Insights", Kind: broker.KindAnalytics, Scopes: []string{"data:request"}},
		"compliance":     {Name: "Compliance desk", Kind: broker.KindCompliance, Scopes: []string{"audit:read", "subjects:write"}},
	} {
		env.tokens[name] = "Bearer " + h.partnerWith(spec).Bearer
	}
	env.tokens["retailer"] = "Bearer " + env.retailer.Bearer
	f := newForger(h)
	for _, at := range jwtAttacks(t, f, env.retailer.ID, []string{"orders:read", "orders:write"}) {
		env.tokens["jwt:"+at.name] = at.authz
	}
	// A genuine notification, whose signature the corpus replays on others.
	hi := envelope(textMsg("919811160009", "Hi"))
	env.replayed = signOf(hi)
	if st := h.webhook(hi); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	env.order = h.purchase(env.wa)
	// The retailer has seen the order, so its customer_ref exists.
	if a := h.getWith("/v1/orders/"+env.order, env.tokens["retailer"]); a.status != 200 {
		t.Fatalf("retailer GET: %d %s", a.status, a.body)
	}
	h.waitIdle()
	sentBefore := len(h.wa.all())
	before := snapshot(t, h)

	groups := make([]string, 0, len(corpus))
	for g := range corpus {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		t.Logf("%-14s %3d cases", g, len(corpus[g]))
		t.Run(g, func(t *testing.T) {
			for _, c := range corpus[g] {
				t.Run(c.Name, func(t *testing.T) {
					req := env.request(t, c)
					var a answer
					if c.Expect == "431" {
						// Headers over the server's read buffer: it answers
						// 431 and closes at once, so a client still writing
						// may see the reset first. Closing is a refusal too
						// (neither a 5xx nor an acceptance); an answer that
						// does arrive must still be the JSON 431.
						resp, err := noRedirects.Do(req)
						if err != nil {
							if !isConnReset(err) {
								t.Fatalf("%s %s: %v", req.Method, req.URL, err)
							}
							t.Logf("refused by closing before the request was read: %v", err)
							return
						}
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						a = answer{status: resp.StatusCode, header: resp.Header, body: b}
					} else if req.ContentLength > httpapi.WebhookBodyLimit {
						a = sendDeclaredFirst(t, req)
					} else {
						a = send(t, req)
					}
					for _, p := range env.checkHostileAnswer(c, a) {
						t.Errorf("%s: %s %.80s: %s; body %.200q", c.Name, c.Method, c.Path, p, a.body)
					}
				})
			}
		})
	}
	t.Logf("corpus: %d cases", total)

	t.Run("replayed genuine notification changes nothing", func(t *testing.T) {
		// Meta redelivers: the same body and signature are acknowledged
		// and ignored. It is also the attacker's replay of a captured one.
		if st := h.webhookSigned(hi, env.replayed); st != 200 {
			t.Errorf("replay: %d, want 200 (acknowledged, ignored)", st)
		}
	})

	h.waitIdle()
	after := snapshot(t, h)
	for tbl, rows := range before.rows {
		gone, added := diffRows(rows, after.rows[tbl])
		for _, r := range gone {
			t.Errorf("table %s lost or changed row %.300s", tbl, r)
		}
		for _, r := range added {
			t.Errorf("table %s gained row %.300s", tbl, r)
		}
	}
	for tbl := range after.rows {
		if _, ok := before.rows[tbl]; !ok {
			t.Errorf("table %s appeared", tbl)
		}
	}
	if n := len(h.wa.all()) - sentBefore; n != 0 {
		for _, m := range h.wa.all()[sentBefore:] {
			t.Logf("sent to %s: %s %q", m.To, m.kind(), m.text())
		}
		t.Errorf("%d messages went to shoppers", n)
	}
	checkAuditGrowth(t, h, before, after, total)
	if l := logs.String(); strings.Contains(l, "panic") {
		t.Errorf("the broker logged a panic:\n%s", l)
	}
}

// checkAuditGrowth checks the entries present before are untouched and
// that every entry appended since records a refusal, never a release.
func checkAuditGrowth(t *testing.T, h *harness, before, after dbSnapshot, cases int) {
	t.Helper()
	ctx := context.Background()
	var prefix []byte
	if err := h.m.Sys.DB.Pool.QueryRow(ctx, `SELECT coalesce(sha256(string_agg(leaf_hash, '' ORDER BY idx)), '')
		FROM audit_entries WHERE idx < $1`, before.auditSize).Scan(&prefix); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(prefix, before.auditHash) {
		t.Error("audit entries that existed before the corpus changed")
	}
	rows, err := h.m.Sys.DB.Pool.Query(ctx, `SELECT leaf FROM audit_entries WHERE idx >= $1 ORDER BY idx`, before.auditSize)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) > cases {
		t.Errorf("%d audit entries appended for %d requests", len(leaves), cases)
	}
	actions := map[string]int{}
	for _, l := range leaves {
		var e audit.Entry
		if err := json.Unmarshal(l, &e); err != nil {
			t.Errorf("appended entry does not decode: %v", err)
			continue
		}
		actions[e.Action+" → "+e.Outcome]++
		if e.Outcome != audit.OutcomeDenied && e.Outcome != audit.OutcomeFailed {
			t.Errorf("a hostile request was audited as %q, not a refusal: %s", e.Outcome, l)
		}
		if len(e.Released) > 0 {
			t.Errorf("a hostile request released %v: %s", e.Released, l)
		}
	}
	t.Logf("audit: %d refusal entries appended (%v)", len(leaves), actions)
}

// isConnReset reports whether err is the server closing the connection
// while the client was still sending.
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "connection reset by peer") || strings.Contains(err.Error(), "broken pipe")
}
