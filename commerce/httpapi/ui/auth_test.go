package ui

import (
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string
		csrf       string // "" uses the page's token; "none" sends none
		cookie     bool   // send the double-submit cookie
		wantStatus int
		wantAudit  string // the last audit entry's actor, action and outcome; "" for none
		wantText   string
	}{
		{name: "right password", user: testOfficer, pass: testPassword, cookie: true,
			wantStatus: fiber.StatusSeeOther, wantAudit: "officer:off_asha login done"},
		{name: "wrong password", user: testOfficer, pass: "hunter2-not-it", cookie: true,
			wantStatus: fiber.StatusUnauthorized, wantAudit: "officer:off_asha login failed", wantText: "Wrong name or password."},
		{name: "unknown name", user: "mallory", pass: testPassword, cookie: true,
			wantStatus: fiber.StatusUnauthorized, wantAudit: "officer:unknown login failed", wantText: "Wrong name or password."},
		{name: "disabled officer with the right password", user: "ravi", pass: testPassword, cookie: true,
			wantStatus: fiber.StatusUnauthorized, wantAudit: "officer:off_ravi login failed", wantText: "Wrong name or password."},
		{name: "no CSRF token", user: testOfficer, pass: testPassword, csrf: "none", cookie: true,
			wantStatus: fiber.StatusForbidden, wantText: "sign-in form expired"},
		{name: "wrong CSRF token", user: testOfficer, pass: testPassword, csrf: randomToken(), cookie: true,
			wantStatus: fiber.StatusForbidden, wantText: "sign-in form expired"},
		{name: "token without its cookie", user: testOfficer, pass: testPassword, cookie: false,
			wantStatus: fiber.StatusForbidden, wantText: "sign-in form expired"},
		{name: "empty password", user: testOfficer, pass: "", cookie: true,
			wantStatus: fiber.StatusBadRequest, wantText: "Enter your name and password."},
		{name: "overlong name", user: strings.Repeat("a", 65), pass: testPassword, cookie: true,
			wantStatus: fiber.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tok, ck := h.loginForm()
			form := url.Values{"name": {tc.user}, "password": {tc.pass}}
			switch tc.csrf {
			case "":
				form.Set("csrf", tok)
			case "none":
			default:
				form.Set("csrf", tc.csrf)
			}
			var cookies []*http.Cookie
			if tc.cookie {
				cookies = append(cookies, ck)
			}
			r := h.do("POST", "/ui/login", form, cookies, nil)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d\n%s", r.status, tc.wantStatus, r.body)
			}
			sess := r.cookie(SessionCookie)
			if ok := tc.wantStatus == fiber.StatusSeeOther; ok != (sess != nil) {
				t.Fatalf("session cookie = %v, want one: %v", sess, ok)
			}
			if sess != nil {
				if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" || sess.Secure {
					t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", r.header.Values("Set-Cookie"))
				}
				if loc := r.header.Get("Location"); loc != "/ui/overview" {
					t.Errorf("redirect to %q, want /ui/overview", loc)
				}
			}
			if !strings.Contains(r.body, tc.wantText) {
				t.Errorf("page lacks %q:\n%s", tc.wantText, r.body)
			}
			actions := h.log.actions()
			switch {
			case tc.wantAudit == "" && len(actions) != 0:
				t.Errorf("audited %v, want nothing", actions)
			case tc.wantAudit != "" && (len(actions) != 1 || actions[0] != tc.wantAudit):
				t.Errorf("audited %v, want [%s]", actions, tc.wantAudit)
			}
			if tc.wantAudit != "" {
				e := h.log.last()
				if e.Subject != "" || strings.Contains(e.Reason, tc.user) || strings.Contains(e.Reason, tc.pass) && tc.pass != "" {
					t.Errorf("audit entry %+v holds the name or password tried", e)
				}
			}
		})
	}
}

func TestSecureCookie(t *testing.T) {
	tests := []struct {
		name   string
		secure bool
	}{{"plain HTTP", false}, {"TLS in front", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(d *Deps) { d.SecureCookies = tc.secure })
			tok, ck := h.loginForm()
			if ck.Secure != tc.secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				t.Errorf("sign-in cookie: Secure %v HttpOnly %v SameSite %v", ck.Secure, ck.HttpOnly, ck.SameSite)
			}
			r := h.do("POST", "/ui/login", url.Values{"csrf": {tok}, "name": {testOfficer}, "password": {testPassword}},
				[]*http.Cookie{ck}, nil)
			if s := r.cookie(SessionCookie); s == nil || s.Secure != tc.secure {
				t.Errorf("session cookie %v: want Secure = %v", s, tc.secure)
			}
		})
	}
}

func TestLoginThrottling(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Limits = Limits{NameFailures: 3, AddrFailures: 5, FailureWindow: 15 * time.Minute} })
	attempt := func(name, pass string) int {
		tok, ck := h.loginForm()
		return h.do("POST", "/ui/login", url.Values{"csrf": {tok}, "name": {name}, "password": {pass}},
			[]*http.Cookie{ck}, nil).status
	}
	steps := []struct {
		name       string
		user, pass string
		advance    time.Duration
		want       int
	}{
		{"first wrong password", testOfficer, "x", 0, fiber.StatusUnauthorized},
		{"second wrong password", testOfficer, "x", 0, fiber.StatusUnauthorized},
		{"third wrong password makes the name wait", testOfficer, "x", 0, fiber.StatusUnauthorized},
		{"right password while the name waits", testOfficer, testPassword, 0, fiber.StatusTooManyRequests},
		{"another name is not locked", "bala", "x", 0, fiber.StatusUnauthorized},
		{"fifth failure from the address makes it wait", "chitra", "x", 0, fiber.StatusUnauthorized},
		{"the address waits for every name", "dev", "x", 0, fiber.StatusTooManyRequests},
		{"after the window the right password works", testOfficer, testPassword, 15 * time.Minute, fiber.StatusSeeOther},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			h.clock.Add(st.advance)
			if got := attempt(st.user, st.pass); got != st.want {
				t.Errorf("status = %d, want %d", got, st.want)
			}
		})
	}
	// Throttled attempts are not audited; the ones that counted are.
	var failed int
	for _, a := range h.log.actions() {
		if strings.HasSuffix(a, "login failed") {
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d failed sign-ins audited, want 5: %v", failed, h.log.actions())
	}
}

func TestSessionLifetime(t *testing.T) {
	tests := []struct {
		name  string
		steps []time.Duration // waits between requests; the last request is checked
		alive bool
	}{
		{"fresh", []time.Duration{0}, true},
		{"used within the idle timeout", []time.Duration{29 * time.Minute}, true},
		{"idle too long", []time.Duration{31 * time.Minute}, false},
		{"kept alive by use", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, true},
		{"absolute end despite use", slices.Repeat([]time.Duration{25 * time.Minute}, 20), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			sess, _ := h.login(testOfficer, testPassword)
			var r response
			for _, wait := range tc.steps {
				h.clock.Add(wait)
				r = h.do("GET", "/ui/audit", nil, []*http.Cookie{sess}, nil)
			}
			if alive := r.status == fiber.StatusOK; alive != tc.alive {
				t.Fatalf("after %v: status %d, want alive %v", tc.steps, r.status, tc.alive)
			}
			if !tc.alive {
				if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "/ui/login") {
					t.Errorf("expired session redirected to %q, want the sign-in page", loc)
				}
				if h.store.sessionCount() != 0 {
					t.Error("the expired session was not deleted")
				}
				// The JSON compliance API refuses it too.
				if api := h.do("GET", "/v1/audit/entries", nil, []*http.Cookie{sess}, nil); api.status != fiber.StatusUnauthorized {
					t.Errorf("compliance API with an expired session: %d, want 401", api.status)
				}
			}
		})
	}
}

// TestNonOfficersGetNothing: without a valid session no dashboard page or
// export answers with data, whatever else the request carries.
func TestNonOfficersGetNothing(t *testing.T) {
	h := newHarness(t)
	h.log.add(entry("retailer:cli_fresh", "release", "order_fulfilment", "sub_SECRETPSEUDONYM", "released"))
	h.log.publish(t)
	forged := &http.Cookie{Name: SessionCookie, Value: randomToken()}
	tests := []struct {
		name    string
		cookies []*http.Cookie
		headers map[string]string
	}{
		{"no cookie", nil, nil},
		{"a partner's bearer token", nil, map[string]string{"Authorization": "Bearer eyJhbGciOiJFZERTQSJ9.e30.sig"}},
		{"a forged session cookie", []*http.Cookie{forged}, nil},
		{"a malformed session cookie", []*http.Cookie{{Name: SessionCookie, Value: "../../etc"}}, nil},
		{"a CSRF header alone", nil, map[string]string{CSRFHeader: "x"}},
	}
	pages := []struct{ method, path string }{
		{"GET", "/ui/overview"}, {"GET", "/ui/audit"}, {"GET", "/ui/audit/0"}, {"GET", "/ui/flows"},
		{"GET", "/ui/policies"}, {"GET", "/ui/subjects"}, {"GET", "/ui/reports"}, {"GET", "/ui/reports/audit.csv"},
		{"POST", "/ui/subjects/lookup"}, {"POST", "/ui/subjects/export"}, {"POST", "/ui/subjects/erase"},
		{"POST", "/ui/logout"},
	}
	for _, tc := range tests {
		for _, p := range pages {
			t.Run(tc.name+" "+p.method+" "+p.path, func(t *testing.T) {
				var form url.Values
				if p.method == "POST" {
					form = url.Values{"wa_id": {"919811112222"}, "confirm": {"yes"}, "csrf": {"x"}}
				}
				r := h.do(p.method, p.path, form, tc.cookies, tc.headers)
				if r.status != fiber.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/ui/login") {
					t.Errorf("status %d, Location %q: want a redirect to the sign-in page", r.status, r.header.Get("Location"))
				}
				if strings.Contains(r.body, "SECRETPSEUDONYM") || strings.Contains(r.body, "rev123") || len(r.body) > 200 {
					t.Errorf("body gives something away: %q", r.body)
				}
			})
		}
		t.Run(tc.name+" compliance API", func(t *testing.T) {
			r := h.do("GET", "/v1/audit/entries", nil, tc.cookies, tc.headers)
			if r.status != fiber.StatusUnauthorized || strings.Contains(r.body, "SECRETPSEUDONYM") {
				t.Errorf("GET /v1/audit/entries: %d %s, want 401 and nothing", r.status, r.body)
			}
		})
	}
	if n := len(h.log.actions()); n != 1 {
		t.Errorf("anonymous requests were audited as actions: %v", h.log.actions())
	}
}

func TestCSRF(t *testing.T) {
	tests := []struct {
		name      string
		token     func(real string) string
		header    bool // send the token as X-CSRF-Token instead of a form field
		wantOK    bool
		wantAfter int // sessions left
	}{
		{"no token", func(string) string { return "" }, false, false, 1},
		{"wrong token", func(string) string { return randomToken() }, false, false, 1},
		{"another session's token", nil, false, false, 1},
		{"token with a suffix", func(r string) string { return r + "x" }, false, false, 1},
		{"right token", func(r string) string { return r }, false, true, 0},
		{"right token in the header", func(r string) string { return r }, true, true, 0},
		// Fiber's FormValue reads the query string first; a token there
		// would land in URLs, history and access logs, so it is refused.
		{"right token in the query string", func(r string) string { return r }, false, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			sess, real := h.login(testOfficer, testPassword)
			var tok string
			if tc.token == nil {
				_, tok = h.login(testOfficer, testPassword) // a second session of the same officer
				tc.wantAfter = 2
			} else {
				tok = tc.token(real)
			}
			form, headers, target := url.Values{}, map[string]string{}, "/ui/logout"
			switch {
			case tc.header:
				headers[CSRFHeader] = tok
			case strings.Contains(tc.name, "query string"):
				target += "?" + url.Values{csrfField: {tok}}.Encode()
			case tok != "":
				form.Set(csrfField, tok)
			}
			r := h.do("POST", target, form, []*http.Cookie{sess}, headers)
			if ok := r.status == fiber.StatusSeeOther; ok != tc.wantOK {
				t.Fatalf("sign-out: status %d, want success %v\n%s", r.status, tc.wantOK, r.body)
			}
			if !tc.wantOK && (r.status != fiber.StatusForbidden || !strings.Contains(r.body, "This form has expired")) {
				t.Errorf("status %d, want 403 with an explanation", r.status)
			}
			if n := h.store.sessionCount(); n != tc.wantAfter {
				t.Errorf("%d sessions after, want %d", n, tc.wantAfter)
			}
		})
	}
}

// TestOfficerAuth covers the JSON compliance API's view of a session:
// reads need the cookie, writes the CSRF header as well.
func TestOfficerAuth(t *testing.T) {
	h := newHarness(t)
	sess, csrf := h.login(testOfficer, testPassword)
	probe := fiber.New()
	probe.All("/probe", func(c *fiber.Ctx) error {
		p, ok := h.ui.Officer(c, c.Method() != fiber.MethodGet)
		if !ok {
			return c.Status(fiber.StatusUnauthorized).SendString("")
		}
		return c.SendString(p.Actor() + " " + strings.Join(p.Scopes, " "))
	})
	tests := []struct {
		name    string
		method  string
		cookie  bool
		csrf    string
		want    int
		wantOut string
	}{
		{"read with the session", "GET", true, "", 200, "officer:off_asha audit:read subjects:write"},
		{"read without it", "GET", false, "", 401, ""},
		{"write with the CSRF header", "POST", true, csrf, 200, "officer:off_asha audit:read subjects:write"},
		{"write without it", "POST", true, "", 401, ""},
		{"write with a wrong one", "POST", true, randomToken(), 401, ""},
		{"CSRF header without the session", "POST", false, csrf, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "/probe", nil)
			if tc.cookie {
				req.AddCookie(sess)
			}
			if tc.csrf != "" {
				req.Header.Set(CSRFHeader, tc.csrf)
			}
			resp, err := probe.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 200)
			n, _ := resp.Body.Read(b)
			if resp.StatusCode != tc.want || string(b[:n]) != tc.wantOut {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, b[:n], tc.want, tc.wantOut)
			}
		})
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	h := newHarness(t)
	sess, csrf := h.login(testOfficer, testPassword)
	r := h.do("POST", "/ui/logout", url.Values{csrfField: {csrf}}, []*http.Cookie{sess}, nil)
	if r.status != fiber.StatusSeeOther || r.header.Get("Location") != "/ui/login?out=1" {
		t.Fatalf("sign-out: %d to %q", r.status, r.header.Get("Location"))
	}
	if c := r.cookie(SessionCookie); c == nil || c.Value != "" || !c.Expires.Before(time.Now()) {
		t.Errorf("sign-out did not clear the cookie: %v", r.header.Values("Set-Cookie"))
	}
	if r := h.do("GET", "/ui/overview", nil, []*http.Cookie{sess}, nil); r.status != fiber.StatusSeeOther {
		t.Errorf("old cookie after sign-out: %d, want a redirect", r.status)
	}
	if got := h.log.actions(); !slices.Contains(got, "officer:off_asha logout done") {
		t.Errorf("sign-out not audited: %v", got)
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/ui/overview"},
		{"/ui/audit", "/ui/audit"},
		{"/ui/audit/12", "/ui/audit/12"},
		{"//evil.example/ui/", "/ui/overview"},
		{"https://evil.example/ui/x", "/ui/overview"},
		{"/ui/../v1/audit/entries", "/ui/overview"},
		{"/ui/audit?subject=sub_x", "/ui/overview"},
		{"/ui/%2e%2e/x", "/ui/overview"},
		{"/ui\\evil", "/ui/overview"},
		{"/ui/login", "/ui/overview"},
		{"/v1/audit/entries", "/ui/overview"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := safeNext(tc.in); got != tc.want {
				t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLoginRedirectsBack(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/ui/flows", nil, nil, nil)
	if loc := r.header.Get("Location"); loc != "/ui/login?next=%2Fui%2Fflows" {
		t.Fatalf("redirect to %q", loc)
	}
	page := h.do("GET", "/ui/login?next=%2Fui%2Fflows", nil, nil, nil)
	if !strings.Contains(page.body, `name="next" value="/ui/flows"`) {
		t.Fatalf("the form does not carry next:\n%s", page.body)
	}
	tok := page.cookie(loginCookie)
	r = h.do("POST", "/ui/login", url.Values{"csrf": {tok.Value}, "name": {testOfficer}, "password": {testPassword},
		"next": {"/ui/flows"}}, []*http.Cookie{tok}, nil)
	if loc := r.header.Get("Location"); loc != "/ui/flows" {
		t.Errorf("after sign-in: redirect to %q, want /ui/flows", loc)
	}
}

// TestFormFieldsOnlyFromBody: the sign-in form and the subject desk read
// their fields from the body only. A token, password or phone number in
// the query string would be kept in URLs, history and access logs.
func TestFormFieldsOnlyFromBody(t *testing.T) {
	h := newHarness(t)
	tok, ck := h.loginForm()
	q := url.Values{"csrf": {tok}, "name": {testOfficer}, "password": {testPassword}}.Encode()
	r := h.do("POST", "/ui/login?"+q, url.Values{}, []*http.Cookie{ck}, nil)
	if r.status != fiber.StatusForbidden || r.cookie(SessionCookie) != nil {
		t.Errorf("sign-in from the query string: %d, session %v; want 403 and none", r.status, r.cookie(SessionCookie))
	}
	// The same fields in a multipart body are accepted.
	tok, ck = h.loginForm()
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"csrf": tok, "name": testOfficer, "password": testPassword} {
		mw.WriteField(k, v) //nolint:errcheck
	}
	mw.Close()
	req := httptest.NewRequest("POST", "/ui/login", strings.NewReader(buf.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.AddCookie(ck)
	resp, err := h.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != fiber.StatusSeeOther {
		t.Errorf("multipart sign-in: %d, want 303", resp.StatusCode)
	}
}

// TestLoginProgressiveDelays: failures past the free ones make the next
// attempt wait, twice as long each time up to a cap; while it waits even
// the right password is not checked (429 with Retry-After), and once the
// wait has passed the right password signs in: there is no lock that a
// guesser can renew for ever.
func TestLoginProgressiveDelays(t *testing.T) {
	h := newHarness(t) // default limits: 3 free per name, 10 per address, 1 s doubling to 30 s per name
	attempt := func(pass string) response {
		t.Helper()
		return h.signInRaw(testOfficer, pass)
	}
	for i := range 3 {
		if r := attempt("wrong-" + strconv.Itoa(i)); r.status != fiber.StatusUnauthorized {
			t.Fatalf("free failure %d: %d, want 401", i+1, r.status)
		}
	}
	r := attempt(testPassword)
	if r.status != fiber.StatusTooManyRequests || r.header.Get(fiber.HeaderRetryAfter) == "" || !strings.Contains(r.body, "Wait a second") {
		t.Fatalf("the right password during the first wait: %d, Retry-After %q, want 429 asking to wait a second\n%s",
			r.status, r.header.Get(fiber.HeaderRetryAfter), r.body)
	}
	h.clock.Add(time.Second)
	if r := attempt(testPassword); r.status != fiber.StatusSeeOther {
		t.Fatalf("the right password once the wait passed: %d, want 303", r.status)
	}

	// A guesser who keeps going: the waits double and stop at the cap.
	h.clock.Add(2 * time.Hour) // the address's run ends too
	var waits []int
	for range 12 {
		if r := attempt("guess"); r.status != fiber.StatusUnauthorized {
			t.Fatalf("a guess after its wait: %d, want 401", r.status)
		}
		r := attempt("guess")
		if r.status != fiber.StatusTooManyRequests {
			waits = append(waits, 0)
			continue
		}
		secs, err := strconv.Atoi(r.header.Get(fiber.HeaderRetryAfter))
		if err != nil {
			t.Fatalf("Retry-After %q", r.header.Get(fiber.HeaderRetryAfter))
		}
		waits = append(waits, secs)
		h.clock.Add(time.Duration(secs) * time.Second)
	}
	// The first round's second guess is checked too (the second of three
	// free failures); then each wait doubles: 1, 2, 4, 8, 16 s, capped at
	// 30 s (Retry-After rounds up by a second). The address's waits,
	// from its tenth failure on, stay shorter.
	want := []int{0, 2, 3, 5, 9, 17, 31, 31, 31, 31, 31, 31}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	// However long the guessing went on, the right password works once
	// the current wait has passed.
	if r := attempt(testPassword); r.status != fiber.StatusSeeOther {
		t.Errorf("the right password after the last wait: %d, want 303", r.status)
	}
}
