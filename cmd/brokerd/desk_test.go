package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
)

// officerUI is a signed-in officer's browser: a cookie jar, no redirects
// followed, and the session's CSRF token.
type officerUI struct {
	h    *harness
	c    *http.Client
	csrf string
}

// reLoginCSRF and reCSRFMeta are declared in ops_test.go.

// officerUI creates an officer and signs in at /ui.
func (h *harness) officerUI() *officerUI {
	h.t.Helper()
	hash, err := token.HashSecret("correct horse battery staple")
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.m.Sys.DB.Officers().Create(context.Background(), broker.Officer{ID: broker.NewID("off"), Name: "meena",
		PasswordHash: hash}); err != nil {
		h.t.Fatal(err)
	}
	// As if the officer had already chosen their own password.
	if _, err := h.m.Sys.DB.Pool.Exec(context.Background(), `UPDATE officers SET password_temporary = false WHERE name = 'meena'`); err != nil {
		h.t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	o := &officerUI{h: h, c: &http.Client{Jar: jar, Transport: decisions,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, page := o.get("/ui/login")
	m := reLoginCSRF.FindStringSubmatch(page)
	if m == nil {
		h.t.Fatal("no CSRF token on the sign-in page")
	}
	if st, _ := o.post("/ui/login", url.Values{"csrf": {m[1]}, "name": {"meena"}, "password": {"correct horse battery staple"}}); st != 303 {
		h.t.Fatalf("sign-in: %d", st)
	}
	st, page := o.get("/ui/overview")
	if m = reCSRFMeta.FindStringSubmatch(page); m == nil {
		h.t.Fatalf("signed in, but no CSRF token: %d %v %.300s", st, jar.Cookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(h.base, "http://")}), page)
	}
	o.csrf = m[1]
	return o
}

func (o *officerUI) get(path string) (int, string) {
	o.h.t.Helper()
	resp, err := o.c.Get(o.h.base + path)
	if err != nil {
		o.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (o *officerUI) post(path string, form url.Values) (int, string) {
	o.h.t.Helper()
	if o.csrf != "" {
		form.Set("csrf", o.csrf)
	}
	resp, err := o.c.PostForm(o.h.base+path, form)
	if err != nil {
		o.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

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
	// The desk in /ui: the list holds no text; the ticket page shows it.
	ui := h.officerUI()
	if st, page := ui.get("/ui/grievances?status=open"); st != 200 || !strings.Contains(page, id) ||
		!strings.Contains(page, "left") || strings.Contains(page, "stale") {
		t.Fatalf("/ui/grievances: %d\n%s", st, page)
	}
	if st, page := ui.get("/ui/grievances/" + id); st != 200 || !strings.Contains(page, "stale") {
		t.Fatalf("/ui/grievances/%s: %d\n%s", id, st, page)
	}
	if st, _ := ui.get("/ui/grievances/grv_nope"); st != 404 {
		t.Errorf("unknown ticket: %d", st)
	}
	if st, _ := ui.get("/ui/grievances?status=%27%20OR%201=1"); st != 400 {
		t.Errorf("junk status filter in /ui: %d", st)
	}
	// A resolution without the session's form token changes nothing.
	forged, _ := http.NewRequest("POST", h.base+"/ui/grievances/"+id+"/resolve", strings.NewReader("outcome=withdrawn"))
	forged.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := ui.c.Do(forged); err != nil || resp.StatusCode != 403 {
		t.Errorf("resolve without the form token: %v %v", resp, err)
	} else {
		resp.Body.Close()
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
	if st, page := ui.get("/ui/grievances?status=overdue"); st != 200 || !strings.Contains(page, id) ||
		!strings.Contains(page, "overdue by") || !strings.Contains(page, "escalated") {
		t.Fatalf("/ui/grievances?status=overdue: %d\n%s", st, page)
	}

	// Resolution: a code from the list, once; the shopper is told.
	officer := broker.Party{ID: "off_1", Kind: broker.KindOfficer}
	if _, err := h.m.Sys.Desk.Resolve(context.Background(), id, "we fixed it", officer); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("free-text outcome: %v", err)
	}
	if st, _ := ui.post("/ui/grievances/"+id+"/resolve", url.Values{"outcome": {"we fixed it"}}); st != 400 {
		t.Errorf("free-text outcome in /ui: %d", st)
	}
	if st, _ := ui.post("/ui/grievances/"+id+"/resolve", url.Values{"outcome": {commerce.OutcomeInFavour}}); st != 303 {
		t.Fatalf("resolve in /ui: %d", st)
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

	// The SLA report is in the Art. 30 record, as data and in /ui.
	var rec struct {
		SLA *commerce.SLAReport `json:"grievance_sla"`
	}
	if r := h.do("GET", "/v1/reports/processing", desk, nil, &rec); r.StatusCode != 200 || rec.SLA == nil ||
		rec.SLA.Resolved != 1 || rec.SLA.ResolvedInTime != 0 {
		t.Errorf("Art. 30 record: %d %+v", r.StatusCode, rec.SLA)
	}
	if st, page := ui.get("/ui/reports"); st != 200 || !strings.Contains(page, `id="art30-grievances"`) ||
		!strings.Contains(page, "0% of them within 30 days") {
		t.Errorf("/ui/reports lacks the grievance SLA: %d", st)
	}

	// Every step is in the log, with codes only.
	h.waitIdle()
	if _, err := h.m.Sys.IntegrateAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"grievance_open", "grievance_acknowledge", "grievance_escalate", "grievance_resolve"} {
		if n := h.count(`SELECT count(*) FROM audit_entries WHERE action = $1 AND resource = $2`, action, id); n != 1 {
			t.Errorf("%d %s entries", n, action)
		}
	}
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE action = 'grievance_read' AND resource = $1`, id); n != 1 {
		t.Errorf("%d grievance_read entries, want 1 (the ticket page)", n)
	}
	if n := h.count(`SELECT count(*) FROM audit_entries WHERE position($1::bytea IN leaf) > 0 OR position($2::bytea IN leaf) > 0`,
		[]byte("stale"), []byte(wa)); n != 0 {
		t.Errorf("%d audit leaves hold the complaint or the number", n)
	}
}
