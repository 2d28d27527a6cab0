package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Cookie and form names.
const (
	// SessionCookie carries the session secret. Path=/ so that the JSON
	// compliance API under /v1 recognises the officer too.
	SessionCookie = "sieve_session"
	// loginCookie is the sign-in form's double-submit CSRF token.
	loginCookie = "sieve_login"
	// CSRFHeader carries the session's CSRF token on JSON API calls that
	// change state.
	CSRFHeader = "X-CSRF-Token"
	csrfField  = "csrf"
)

// touchEvery bounds how often a session's last_seen is written: idleness is
// judged to within this much, at one write a minute per active officer.
const touchEvery = time.Minute

type localKey int

const keySession localKey = 1

// current is the signed-in officer of a request.
type current struct {
	session broker.OfficerSession
	officer broker.Officer
}

// randomToken returns 32 random bytes in URL-safe base64 (43 characters).
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// hashSecret maps a cookie's session secret to the stored id hash; ok is
// false for anything that is not 32 bytes in URL-safe base64.
func hashSecret(secret string) ([]byte, bool) {
	if len(secret) != 43 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != 32 {
		return nil, false
	}
	h := sha256.Sum256(raw)
	return h[:], true
}

// formValue returns a field of the request body (urlencoded or multipart)
// and never of the query string. Fiber's FormValue reads the query first,
// so a CSRF token, a password or a phone number put in a URL would be
// accepted, and URLs are kept in history, Referer headers and access logs.
func formValue(c *fiber.Ctx, key string) string {
	if v := c.Request().PostArgs().Peek(key); len(v) > 0 {
		return string(v)
	}
	if mf, err := c.Request().MultipartForm(); err == nil {
		if v := mf.Value[key]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func equalTokens(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// current returns the request's valid session, looked up once per request.
// An expired, idle or orphaned session is deleted and treated as absent.
func (u *UI) current(c *fiber.Ctx) (*current, bool) {
	if cur, ok := c.Locals(keySession).(*current); ok {
		return cur, cur != nil
	}
	cur := u.lookupSession(c)
	c.Locals(keySession, cur)
	return cur, cur != nil
}

func (u *UI) lookupSession(c *fiber.Ctx) *current {
	idHash, ok := hashSecret(c.Cookies(SessionCookie))
	if !ok {
		return nil
	}
	ctx := c.UserContext()
	s, o, err := u.d.Officers.Session(ctx, idHash)
	if err != nil {
		if !broker.IsNotFound(err) {
			u.d.Log.Warn("dashboard session lookup failed", "err", err)
		}
		return nil
	}
	now := u.d.Now()
	if o.Disabled || !now.Before(s.ExpiresAt) || now.Sub(s.LastSeen) >= u.d.Limits.IdleTimeout {
		if err := u.d.Officers.DeleteSession(ctx, idHash); err != nil {
			u.d.Log.Warn("dashboard session delete failed", "err", err)
		}
		return nil
	}
	if now.Sub(s.LastSeen) >= touchEvery {
		if err := u.d.Officers.TouchSession(ctx, idHash, now); err != nil {
			u.d.Log.Warn("dashboard session touch failed", "err", err)
		}
		s.LastSeen = now
	}
	return &current{session: s, officer: o}
}

// party is the officer as an actor, with the compliance scopes.
func (cur *current) party() broker.Party {
	return broker.Party{ID: cur.officer.ID, Kind: broker.KindOfficer,
		Scopes: []broker.Scope{broker.ScopeAuditRead, broker.ScopeSubjectsWrite}}
}

// Officer implements httpapi.OfficerAuth for the JSON compliance API: a
// valid session cookie of an officer who has chosen their own password
// and, for state-changing calls, the session's CSRF token in the
// X-CSRF-Token header.
func (u *UI) Officer(c *fiber.Ctx, mutating bool) (broker.Party, bool) {
	cur, ok := u.current(c)
	if !ok {
		return broker.Party{}, false
	}
	if cur.officer.PasswordTemporary { // a one-time password opens nothing but /ui/password
		return broker.Party{}, false
	}
	if mutating && !equalTokens(c.Get(CSRFHeader), cur.session.CSRF) {
		return broker.Party{}, false
	}
	return cur.party(), true
}

// passwordPath is the page an officer with a one-time password is held on.
const passwordPath = "/ui/password"

// officer guards a page: anonymous visitors are sent to the sign-in page
// (and get nothing else), an officer with a one-time password to the
// password page (and may only sign out otherwise), and every non-GET
// request must carry the session's CSRF token.
func (u *UI) officer(h handler) handler {
	return func(c *fiber.Ctx) error {
		cur, ok := u.current(c)
		if !ok {
			if c.Method() == fiber.MethodGet {
				return c.Redirect("/ui/login"+query("next", c.Path()), fiber.StatusSeeOther)
			}
			return c.Redirect("/ui/login?expired=1", fiber.StatusSeeOther)
		}
		get := c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead
		if cur.officer.PasswordTemporary && c.Path() != passwordPath && c.Path() != "/ui/logout" {
			if get {
				return c.Redirect(passwordPath+query("next", c.Path()), fiber.StatusSeeOther)
			}
			return broker.Errorf(broker.EForbidden, "Choose your own password first: you signed in with a one-time password.")
		}
		if !get {
			tok := formValue(c, csrfField)
			if tok == "" {
				tok = c.Get(CSRFHeader)
			}
			if !equalTokens(tok, cur.session.CSRF) {
				return broker.Errorf(broker.EForbidden,
					"This form has expired or did not come from this dashboard. Go back, reload the page and try again.")
			}
		}
		return h(c)
	}
}

// safeNext keeps a post-sign-in destination only when it is a dashboard
// path: no scheme, host, query or escapes (no open redirect, nothing but a
// path in the URL).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.ContainsAny(next, "?#\\%@:") || strings.Contains(next, "//") ||
		strings.Contains(next, "..") || len(next) > 100 || next == "/ui/login" || next == "/ui/logout" {
		return "/ui/overview"
	}
	return next
}

type loginBody struct {
	Token   string
	Next    string
	Name    string
	Error   string
	Notice  string
	Expired bool
}

func (u *UI) cookie(c *fiber.Ctx, name, value, path string, maxAge int) {
	ck := &fiber.Cookie{Name: name, Value: value, Path: path, HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
		Secure: u.d.SecureCookies || c.Context().IsTLS(), MaxAge: maxAge}
	if maxAge < 0 {
		ck.Expires = time.Unix(1, 0)
	}
	c.Cookie(ck)
}

// loginPage shows the sign-in form with a fresh double-submit token.
func (u authPages) loginPage(c *fiber.Ctx) error {
	if _, ok := u.current(c); ok {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	body := loginBody{Next: safeNext(c.Query("next"))}
	switch {
	case c.Query("out") != "":
		body.Notice = "You are signed out."
	case c.Query("expired") != "":
		body.Notice = "Your session has ended. Sign in again."
	}
	return u.showLogin(c, fiber.StatusOK, body)
}

func (u authPages) showLogin(c *fiber.Ctx, status int, body loginBody) error {
	body.Token = randomToken()
	u.cookie(c, loginCookie, body.Token, "/ui/login", 3600)
	d := u.data(c, "login", "Sign in")
	d.Officer, d.CSRF = nil, ""
	d.Body = body
	return u.renderStatus(c, status, "login", d)
}

// throttleKeys are the keys failed sign-ins count under: the name tried
// and the client address, hashed so neither is stored.
func throttleKeys(name, addr string) (nameKey, addrKey []byte) {
	n := sha256.Sum256([]byte("sieve/ui/name\x00" + strings.ToLower(name)))
	a := sha256.Sum256([]byte("sieve/ui/addr\x00" + addr))
	return n[:], a[:]
}

const (
	maxNameLen     = 64
	maxPasswordLen = 1024
	unknownOfficer = "officer:unknown"
)

// clientIP is the address sign-in failures count under: behind the
// proxies of BROKER_TRUSTED_PROXIES, the client's, not the proxy's.
func (u authPages) clientIP(c *fiber.Ctx) string {
	if u.http != nil {
		return u.http.ClientIP(c)
	}
	return c.IP()
}

// throttle is one key failed sign-ins count under, with its free failures
// and the cap of its waits.
type throttle struct {
	key   []byte
	free  int
	limit time.Duration
}

func (u authPages) throttles(name, addr string) []throttle {
	// One host commonly holds a whole IPv6 /64: count it as one address.
	if a, err := netip.ParseAddr(addr); err == nil && a.Unmap().Is6() {
		p, _ := a.Prefix(64)
		addr = p.String()
	}
	nameKey, addrKey := throttleKeys(name, addr)
	lim := u.d.Limits
	return []throttle{{nameKey, lim.NameFailures, lim.NameMaxDelay}, {addrKey, lim.AddrFailures, lim.AddrMaxDelay}}
}

// login checks the sign-in form. Every outcome but a throttled attempt is
// audited; throttled ones are not, so that hammering the form cannot grow
// the log. A throttled attempt is not checked and not counted: it only
// learns how long to wait, after which the right password signs in.
func (u authPages) login(c *fiber.Ctx) error {
	body := loginBody{Next: safeNext(formValue(c, "next"))}
	if !equalTokens(formValue(c, csrfField), c.Cookies(loginCookie)) {
		body.Error = "The sign-in form expired. Please try again."
		return u.showLogin(c, fiber.StatusForbidden, body)
	}
	name, password := strings.TrimSpace(formValue(c, "name")), formValue(c, "password")
	if name == "" || password == "" || len(name) > maxNameLen || len(password) > maxPasswordLen || !utf8.ValidString(name) {
		body.Error = "Enter your name and password."
		return u.showLogin(c, fiber.StatusBadRequest, body)
	}
	body.Name = name
	ctx := c.UserContext()
	now := u.d.Now()
	lim := u.d.Limits
	keys := u.throttles(name, u.clientIP(c))
	nameKey := keys[0].key
	for _, k := range keys {
		until, err := u.throttled(c, now, k)
		if err != nil {
			return err
		}
		if !until.IsZero() {
			body.Error = "Too many failed sign-ins. Wait " + waitText(until.Sub(now)) + ", then try again."
			return u.showLogin(c, fiber.StatusTooManyRequests, body)
		}
	}

	o, err := u.d.Officers.OfficerByName(ctx, name)
	if err != nil && !broker.IsNotFound(err) {
		return err
	}
	known := err == nil
	hash := u.dummy
	if known {
		hash = o.PasswordHash
	}
	// Check even for an unknown or disabled officer: the answer takes as
	// long either way.
	good := u.d.Passwords.Check(hash, password) && known && !o.Disabled
	if !good {
		actor, reason := unknownOfficer, "unknown officer name"
		if known {
			actor, reason = "officer:"+o.ID, "wrong password"
			if o.Disabled {
				reason = "officer disabled"
			}
		}
		slowed := false
		for _, k := range keys {
			n, _, err := u.d.Officers.RecordLoginFailure(ctx, k.key, now, lim.FailureWindow)
			if err != nil {
				return err
			}
			slowed = slowed || lim.delay(n, k.free, k.limit) > 0
		}
		if slowed {
			reason += "; further sign-ins delayed"
		}
		if _, err := u.record(ctx, actor, "login", purposeAccess, "", "ui", audit.OutcomeFailed, reason); err != nil {
			u.d.Log.Error("audit of a failed sign-in", "err", err)
		}
		body.Error = "Wrong name or password."
		return u.showLogin(c, fiber.StatusUnauthorized, body)
	}

	if err := u.d.Officers.ClearLoginFailures(ctx, nameKey); err != nil {
		return err
	}
	// A sign-in over a live session replaces it rather than leaving two.
	if prev, ok := u.current(c); ok {
		if err := u.d.Officers.DeleteSession(ctx, prev.session.IDHash); err != nil {
			return err
		}
	}
	if err := u.d.Officers.Prune(ctx, now, now.Add(-lim.IdleTimeout), now.Add(-lim.FailureWindow)); err != nil {
		u.d.Log.Warn("pruning dashboard sessions", "err", err)
	}
	// No session without its audit entry: record first.
	if _, err := u.record(ctx, "officer:"+o.ID, "login", purposeAccess, "", "ui", audit.OutcomeDone, "signed in"); err != nil {
		return err
	}
	secret := randomToken()
	idHash, _ := hashSecret(secret)
	s := broker.OfficerSession{IDHash: idHash, OfficerID: o.ID, CSRF: randomToken(), CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(lim.SessionTTL)}
	if err := u.d.Officers.CreateSession(ctx, s); err != nil {
		return err
	}
	u.cookie(c, loginCookie, "", "/ui/login", -1)
	u.cookie(c, SessionCookie, secret, "/", 0)
	if o.PasswordTemporary {
		return c.Redirect(passwordPath+query("next", body.Next), fiber.StatusSeeOther)
	}
	return c.Redirect(body.Next, fiber.StatusSeeOther)
}

// throttled checks the failures counted under k: while the wait they call
// for lasts, it sets Retry-After and returns when the wait ends, else the
// zero time.
func (u authPages) throttled(c *fiber.Ctx, now time.Time, k throttle) (time.Time, error) {
	lim := u.d.Limits
	n, last, err := u.d.Officers.LoginFailures(c.UserContext(), k.key, now, lim.FailureWindow)
	if err != nil {
		return time.Time{}, err
	}
	until := last.Add(lim.delay(n, k.free, k.limit))
	if n == 0 || !now.Before(until) {
		return time.Time{}, nil
	}
	c.Set(fiber.HeaderRetryAfter, retryAfter(until, now))
	return until, nil
}

// waitText says how long to wait, in whole seconds or minutes.
func waitText(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	switch {
	case secs <= 1:
		return "a second"
	case secs < 120:
		return strconv.Itoa(secs) + " seconds"
	}
	return strconv.Itoa((secs+59)/60) + " minutes"
}

func retryAfter(until, now time.Time) string {
	secs := int(until.Sub(now).Seconds()) + 1
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}

// logout ends the session (the officer guard has checked its CSRF token).
func (u authPages) logout(c *fiber.Ctx) error {
	cur, _ := u.current(c)
	ctx := c.UserContext()
	if err := u.d.Officers.DeleteSession(ctx, cur.session.IDHash); err != nil {
		return err
	}
	if _, err := u.record(ctx, "officer:"+cur.officer.ID, "logout", purposeAccess, "", "ui", audit.OutcomeDone, "signed out"); err != nil {
		u.d.Log.Error("audit of a sign-out", "err", err)
	}
	u.cookie(c, SessionCookie, "", "/", -1)
	c.Locals(keySession, (*current)(nil))
	return c.Redirect("/ui/login?out=1", fiber.StatusSeeOther)
}
