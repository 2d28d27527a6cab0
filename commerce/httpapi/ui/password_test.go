package ui

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// signInRaw posts the sign-in form and returns the response.
func (h *harness) signInRaw(name, password string) response {
	h.t.Helper()
	tok, ck := h.loginForm()
	return h.do("POST", "/ui/login", url.Values{"csrf": {tok}, "name": {name}, "password": {password}},
		[]*http.Cookie{ck}, nil)
}

func TestOneTimePassword(t *testing.T) {
	h := newHarness(t)
	o := h.store.officers[testOfficer]
	o.PasswordTemporary = true
	h.store.officers[testOfficer] = o

	r := h.signInRaw(testOfficer, testPassword)
	sess := r.cookie(SessionCookie)
	if r.status != fiber.StatusSeeOther || sess == nil || r.header.Get("Location") != "/ui/password?next=%2Fui%2Foverview" {
		t.Fatalf("sign-in with a one-time password: %d to %q, session %v", r.status, r.header.Get("Location"), sess)
	}
	other := h.signInRaw(testOfficer, testPassword).cookie(SessionCookie) // a second session, to be ended
	jar := []*http.Cookie{sess}

	// Held on the password page: every other page sends the officer there,
	// state-changing forms are refused, the JSON API does not know them.
	if r := h.do("GET", "/ui/audit", nil, jar, nil); r.status != fiber.StatusSeeOther || r.header.Get("Location") != "/ui/password?next=%2Fui%2Faudit" {
		t.Errorf("GET /ui/audit: %d to %q, want the password page", r.status, r.header.Get("Location"))
	}
	page := h.do("GET", "/ui/password", nil, jar, nil)
	if page.status != 200 || !strings.Contains(page.body, `id="password-forced"`) || strings.Contains(page.body, `href="/ui/audit"`) {
		t.Fatalf("password page: %d, want the forced form without the sections\n%s", page.status, page.body)
	}
	csrf := csrfOf(t, page.body)
	if r := h.do("POST", "/ui/subjects/lookup", url.Values{"csrf": {csrf}, "phone": {"+919800000001"}}, jar, nil); r.status != fiber.StatusForbidden {
		t.Errorf("subject lookup before the change: %d, want 403", r.status)
	}
	probe := fiber.New()
	probe.Get("/probe", func(c *fiber.Ctx) error {
		if _, ok := h.ui.Officer(c, false); !ok {
			return c.SendStatus(fiber.StatusUnauthorized)
		}
		return c.SendStatus(fiber.StatusOK)
	})
	api := func() int {
		req, _ := http.NewRequest("GET", "/probe", nil)
		req.AddCookie(sess)
		resp, err := probe.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if st := api(); st != fiber.StatusUnauthorized {
		t.Errorf("compliance API before the change: %d, want 401", st)
	}

	const fresh = "a longer passphrase of mine"
	change := func(current, pw, again string) response {
		return h.do("POST", "/ui/password", url.Values{"csrf": {csrf}, "next": {"/ui/audit"},
			"current": {current}, "password": {pw}, "again": {again}}, jar, nil)
	}
	for _, tc := range []struct {
		name, current, pw, again string
		want                     int
		text                     string
	}{
		{"wrong current password", "not-it", fresh, fresh, fiber.StatusUnauthorized, "Your current password is not that."},
		{"too short", testPassword, "short one", "short one", fiber.StatusBadRequest, "at least 12 characters"},
		{"typed differently", testPassword, fresh, fresh + "!", fiber.StatusBadRequest, "differ"},
		{"the same again", testPassword, testPassword, testPassword, fiber.StatusBadRequest, "other than the current one"},
		{"nothing typed", "", "", "", fiber.StatusBadRequest, "Enter your current password"},
	} {
		if r := change(tc.current, tc.pw, tc.again); r.status != tc.want || !strings.Contains(r.body, tc.text) {
			t.Errorf("%s: %d, want %d with %q\n%s", tc.name, r.status, tc.want, tc.text, r.body)
		}
	}
	if h.store.officers[testOfficer].PasswordHash != "plain:"+testPassword {
		t.Fatal("a refused change changed the password")
	}

	r = change(testPassword, fresh, fresh)
	if r.status != fiber.StatusSeeOther || r.header.Get("Location") != "/ui/audit" {
		t.Fatalf("change: %d to %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	if got := h.store.officers[testOfficer]; got.PasswordTemporary || got.PasswordHash != "plain:"+fresh {
		t.Errorf("after the change the officer is %+v", got)
	}
	acts := h.log.actions()
	if !slices.Contains(acts, "officer:off_asha password failed") || acts[len(acts)-1] != "officer:off_asha password done" {
		t.Errorf("audit entries %q: want the failed attempt and the change", acts)
	}
	if r := h.do("GET", "/ui/audit", nil, jar, nil); r.status != 200 {
		t.Errorf("GET /ui/audit after the change: %d", r.status)
	}
	if st := api(); st != fiber.StatusOK {
		t.Errorf("compliance API after the change: %d", st)
	}
	if r := h.do("GET", "/ui/overview", nil, []*http.Cookie{other}, nil); r.status != fiber.StatusSeeOther ||
		!strings.HasPrefix(r.header.Get("Location"), "/ui/login") {
		t.Errorf("the other session after the change: %d to %q, want it ended", r.status, r.header.Get("Location"))
	}
	if r := h.signInRaw(testOfficer, testPassword); r.status != fiber.StatusUnauthorized {
		t.Errorf("the one-time password after the change: %d, want 401", r.status)
	}
	if r := h.signInRaw(testOfficer, fresh); r.status != fiber.StatusSeeOther || r.header.Get("Location") != "/ui/overview" {
		t.Errorf("the new password: %d to %q", r.status, r.header.Get("Location"))
	}
}

func TestPasswordChangeIsThrottled(t *testing.T) {
	h := newHarness(t)
	sess, csrf := h.login(testOfficer, testPassword)
	var last response
	for range h.ui.d.Limits.NameFailures + 1 {
		last = h.do("POST", "/ui/password", url.Values{"csrf": {csrf}, "current": {"guess-guess"},
			"password": {"a longer passphrase of mine"}, "again": {"a longer passphrase of mine"}}, []*http.Cookie{sess}, nil)
	}
	if last.status != fiber.StatusTooManyRequests || last.header.Get(fiber.HeaderRetryAfter) == "" {
		t.Fatalf("after %d wrong current passwords: %d, want 429 with Retry-After", h.ui.d.Limits.NameFailures+1, last.status)
	}
	// The officer's sign-in is throttled too: guessing through a session
	// and through the form count together.
	if r := h.signInRaw(testOfficer, testPassword); r.status != fiber.StatusTooManyRequests {
		t.Errorf("sign-in after the guesses: %d, want 429", r.status)
	}
}
