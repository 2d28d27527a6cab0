package ui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/policies"
)

// OfficerStore keeps officer accounts, their sessions and the counts of
// failed sign-ins. Not-found is a broker.ENotFound error.
type OfficerStore interface {
	OfficerByName(ctx context.Context, name string) (broker.Officer, error)
	CreateSession(ctx context.Context, s broker.OfficerSession) error
	// Session returns the session with the given id hash and its officer;
	// validity is judged by the caller.
	Session(ctx context.Context, idHash []byte) (broker.OfficerSession, broker.Officer, error)
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error
	// ChangePassword sets the password the officer chose (PasswordTemporary
	// becomes false) and ends every other session of theirs, keeping the
	// session with id hash keep.
	ChangePassword(ctx context.Context, officerID, passwordHash string, keep []byte) error
	DeleteSession(ctx context.Context, idHash []byte) error
	// Prune deletes sessions expired at now or idle since idleSince, and
	// failure windows that started at or before failuresSince.
	Prune(ctx context.Context, now, idleSince, failuresSince time.Time) error
	// LoginFailures and RecordLoginFailure count failed sign-ins under a
	// key in runs that end when window passes without a failure; both
	// return the run's count and the time of its last failure.
	LoginFailures(ctx context.Context, key []byte, now time.Time, window time.Duration) (int, time.Time, error)
	RecordLoginFailure(ctx context.Context, key []byte, now time.Time, window time.Duration) (int, time.Time, error)
	ClearLoginFailures(ctx context.Context, key []byte) error
}

// Passwords hashes and checks officers' passwords (argon2id in production).
type Passwords interface {
	Hash(password string) (string, error)
	// Check reports whether password matches hash, in constant time.
	Check(hash, password string) bool
}

// AuditLog is what the dashboard reads from, and appends to, the audit log.
type AuditLog interface {
	// Entries returns a page of entries, newest first, and the next cursor.
	Entries(ctx context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error)
	// Entry returns the entry at index, or ENotFound.
	Entry(ctx context.Context, index uint64) (audit.Entry, error)
	// Checkpoint returns the latest signed checkpoint note, or ENotFound
	// before the first.
	Checkpoint(ctx context.Context) (string, error)
	Inclusion(ctx context.Context, index, size uint64) (audit.InclusionProof, error)
	Consistency(ctx context.Context, from, to uint64) (audit.ConsistencyProof, error)
	// Counts counts entries per bucket, actor, purpose and outcome over
	// [from, to); hour-multiple buckets start at from truncated to the hour,
	// others at from.
	Counts(ctx context.Context, from, to time.Time, bucket time.Duration) ([]broker.AuditCount, error)
	// Flows is what was actually released: actor × field × purpose.
	Flows(ctx context.Context) ([]broker.ReleasedCell, error)
	// ExportCSV writes the entries matching f as CSV, oldest first.
	ExportCSV(ctx context.Context, w io.Writer, f broker.AuditFilter) error
	// Record durably appends the entry of an officer's own action (the
	// broker's Recorder builds it, with the policy revision in force).
	Record(ctx context.Context, ev broker.Event) error
}

// Deps are what the dashboard needs. Officers, Passwords, Audit and
// CheckpointKeys are required; Rights enables the subject desk, Policy the
// policies page, Processing the Art. 30 report.
type Deps struct {
	Officers  OfficerStore
	Passwords Passwords
	Audit     AuditLog
	// CheckpointKeys are the keys that may have signed checkpoints
	// (current and previous), named by the log's origin.
	CheckpointKeys func() []audit.PublicKey
	Rights         *commerce.Rights
	Partners       broker.PartnerStore
	Policy         func() policies.View
	Processing     func(ctx context.Context) policies.ProcessingRecord
	// Notices returns up to limit recipient notices not yet acknowledged
	// (nil: the page says there is no notice store).
	Notices func(ctx context.Context, limit int) ([]commerce.Notice, error)
	// Holds and Warnings return up to limit categories held through an
	// erasure and pending erasures for inactivity (nil: not shown).
	Holds    func(ctx context.Context, limit int) ([]commerce.HeldCategory, error)
	Warnings func(ctx context.Context, limit int) ([]commerce.PendingErasure, error)
	// ReleaseHeld releases a held invoice to the officer who approves it,
	// for purpose legal_obligation only (audited either way).
	ReleaseHeld func(ctx context.Context, officer broker.Party, orderID, purpose string) (commerce.Invoice, string, error)
	// Desk enables the grievance desk, Breaches the breach workbench.
	Desk     *commerce.Desk
	Breaches *commerce.Workbench
	// Nominees enables the nomination page (it needs Rights too).
	Nominees *commerce.Nominees
	Log      *slog.Logger
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
	// SecureCookies marks cookies Secure even when the request did not
	// arrive over TLS here (TLS terminated by a proxy in front).
	SecureCookies bool
	// StoreName is shown in the page header.
	StoreName string
	Limits    Limits
	// Trusted keeps the last verified checkpoint outside the database
	// (nil: in memory, trusted on first use after each start).
	Trusted TrustStore
	// OnCheck, when set, learns every verification's outcome (metrics).
	OnCheck func(CheckStatus)

	// Offers lists the marketplace's recent offers (nil: none shown).
	Offers OffersSince
}

// Limits are the session lifetimes and sign-in throttling.
//
// Failed sign-ins slow down, they never lock: each failure past a free few
// doubles the wait before the next attempt under the same name, or from
// the same client address, is checked at all (BaseDelay, 2×, 4×…, capped);
// once the wait has passed, the right password always signs in. The
// per-name wait is capped short (a guesser cannot keep the officer out for
// long), the per-address one long (a guesser at one address gets few tries).
type Limits struct {
	SessionTTL  time.Duration // absolute session lifetime (8 h)
	IdleTimeout time.Duration // a session unused this long ends (30 min)
	// FailureWindow ends a run of failures when it passes without one (1 h).
	FailureWindow time.Duration
	// NameFailures per name (3) and AddrFailures per client address (10)
	// are the free failures of a run; the next ones wait.
	NameFailures int
	AddrFailures int
	// BaseDelay is the first wait (1 s); NameMaxDelay (30 s) and
	// AddrMaxDelay (15 min) cap them.
	BaseDelay    time.Duration
	NameMaxDelay time.Duration
	AddrMaxDelay time.Duration
}

// SetDefaults fills unset limits.
func (l *Limits) SetDefaults() {
	if l.SessionTTL == 0 {
		l.SessionTTL = 8 * time.Hour
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = 30 * time.Minute
	}
	if l.FailureWindow == 0 {
		l.FailureWindow = time.Hour
	}
	if l.NameFailures == 0 {
		l.NameFailures = 3
	}
	if l.AddrFailures == 0 {
		l.AddrFailures = 10
	}
	if l.BaseDelay == 0 {
		l.BaseDelay = time.Second
	}
	if l.NameMaxDelay == 0 {
		l.NameMaxDelay = 30 * time.Second
	}
	if l.AddrMaxDelay == 0 {
		l.AddrMaxDelay = 15 * time.Minute
	}
}

// delay is the wait after n failures of which free are free.
func (l *Limits) delay(n, free int, maxDelay time.Duration) time.Duration {
	if n < free {
		return 0
	}
	d := l.BaseDelay
	for i := free; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// UI is the dashboard. It also recognises officers' sessions for the JSON
// compliance API (httpapi.OfficerAuth).
type UI struct {
	d       Deps
	pages   *pages
	witness *witness
	dummy   string // a password hash checked when the name is unknown, so timing tells nothing
	routes  map[string][]string
	http    *httpapi.Server // set by Register: the client's address (trusted proxies)
}

var _ httpapi.OfficerAuth = (*UI)(nil)

// New builds the dashboard. It panics when a required dependency is
// missing or the embedded templates do not parse: both are programming
// errors that no request could survive.
func New(d Deps) *UI {
	if d.Officers == nil || d.Passwords == nil || d.Audit == nil || d.CheckpointKeys == nil {
		panic("ui: Officers, Passwords, Audit and CheckpointKeys are required")
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.StoreName == "" {
		d.StoreName = "Sieve"
	}
	d.Limits.SetDefaults()
	dummy, err := d.Passwords.Hash(randomToken())
	if err != nil {
		panic("ui: hash: " + err.Error())
	}
	return &UI{d: d, pages: mustParsePages(), witness: &witness{store: d.Trusted, log: d.Log}, dummy: dummy, routes: map[string][]string{}}
}

// Register mounts the dashboard's routes on app under /ui. httpapi calls it
// (Deps.UI) before its JSON fallback, so unknown /ui paths get HTML pages
// here instead.
func (u *UI) Register(app *fiber.App, s *httpapi.Server) {
	u.http = s
	auth, audit, subjects, desk := authPages{u}, auditPages{u}, subjectPages{u}, deskPages{u}
	app.Use("/ui", u.headers)
	u.route(app, fiber.MethodGet, "/ui/static/:file", u.static)
	u.route(app, fiber.MethodGet, "/ui", u.home)
	u.route(app, fiber.MethodGet, "/ui/login", auth.loginPage)
	u.route(app, fiber.MethodPost, "/ui/login", auth.login)
	u.route(app, fiber.MethodPost, "/ui/logout", u.officer(auth.logout))
	u.route(app, fiber.MethodGet, "/ui/password", u.officer(auth.passwordPage))
	u.route(app, fiber.MethodPost, "/ui/password", u.officer(auth.changePassword))
	u.route(app, fiber.MethodGet, "/ui/overview", u.officer(audit.overview))
	u.route(app, fiber.MethodGet, "/ui/audit", u.officer(audit.explorer))
	u.route(app, fiber.MethodGet, "/ui/audit/:index", u.officer(audit.entry))
	u.route(app, fiber.MethodGet, "/ui/flows", u.officer(audit.flows))
	u.route(app, fiber.MethodGet, "/ui/policies", u.officer(audit.policies))
	u.route(app, fiber.MethodGet, "/ui/market", u.officer(audit.market))
	u.route(app, fiber.MethodGet, "/ui/reports", u.officer(audit.reports))
	u.route(app, fiber.MethodGet, "/ui/reports/audit.csv", u.officer(audit.auditCSV))
	u.route(app, fiber.MethodGet, "/ui/subjects", u.officer(subjects.desk))
	u.route(app, fiber.MethodPost, "/ui/subjects/lookup", u.officer(subjects.lookup))
	u.route(app, fiber.MethodPost, "/ui/subjects/export", u.officer(subjects.export))
	u.route(app, fiber.MethodPost, "/ui/subjects/erase", u.officer(subjects.erase))
	u.route(app, fiber.MethodPost, "/ui/subjects/correct", u.officer(subjects.correct))
	u.route(app, fiber.MethodGet, "/ui/notices", u.officer(subjects.notices))
	u.route(app, fiber.MethodPost, "/ui/holds/release", u.officer(subjects.releaseHeld))
	desk.registerDesk(app)
	if u.d.Rights != nil {
		desk.registerNominations(app)
	}
	app.Use("/ui", u.unmatched)
}

// The handlers are grouped by what they serve, each group a view of the
// UI: sign-in and passwords; the audit log, flows, policies and reports;
// the data-subject desk; grievances, breaches and nominations.
type (
	authPages    struct{ *UI }
	auditPages   struct{ *UI }
	subjectPages struct{ *UI }
	deskPages    struct{ *UI }
)

// route registers one route and remembers it for 405 answers.
func (u *UI) route(app *fiber.App, method, path string, h handler) {
	app.Add(method, path, u.page(h))
	u.routes[path] = append(u.routes[path], method)
}

// handler is a dashboard handler: errors become HTML error pages.
type handler func(c *fiber.Ctx) error

// page turns a handler's error into an HTML error page; the JSON error
// handler of the API never sees a dashboard error.
func (u *UI) page(h handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := h(c); err != nil {
			return u.fail(c, err)
		}
		return nil
	}
}

// headers applies the dashboard's security headers. The CSP allows only
// our own stylesheet and images: no script runs, inline or not.
func (u *UI) headers(c *fiber.Ctx) error {
	p := c.Path()
	if p != "/ui" && !strings.HasPrefix(p, "/ui/") {
		return c.Next() // Use("/ui") also matches "/uix"
	}
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; style-src 'self'; img-src 'self' data:; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Cross-Origin-Resource-Policy", "same-origin")
	c.Set(fiber.HeaderCacheControl, "no-store")
	if c.Context().IsTLS() {
		c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
	}
	return c.Next()
}

// unmatched answers /ui paths no route took: 405 when the path exists for
// another method, else 404, as HTML pages. Other paths ("/uix" matches
// the prefix too) go on to the API's JSON fallback.
func (u *UI) unmatched(c *fiber.Ctx) error {
	p := c.Path()
	if p != "/ui" && !strings.HasPrefix(p, "/ui/") {
		return c.Next()
	}
	for pattern, methods := range u.routes {
		if matchPattern(pattern, p) {
			allow := slices.Clone(methods)
			slices.Sort(allow)
			c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
			return u.fail(c, broker.Errorf(broker.EMethod, "This page does not accept %s requests.", c.Method()))
		}
	}
	return u.fail(c, broker.Errorf(broker.ENotFound, "There is no such page."))
}

func matchPattern(pattern, path string) bool {
	ps, xs := strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], ":") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if !strings.EqualFold(ps[i], xs[i]) {
			return false
		}
	}
	return true
}

func (u *UI) home(c *fiber.Ctx) error {
	if _, ok := u.current(c); ok {
		return c.Redirect("/ui/overview", fiber.StatusSeeOther)
	}
	return c.Redirect("/ui/login", fiber.StatusSeeOther)
}

// fail renders err as an HTML error page. Domain errors show their safe
// message; anything else is logged and shown as a fixed text.
func (u *UI) fail(c *fiber.Ctx, err error) error {
	status, msg := fiber.StatusInternalServerError, "Something went wrong on our side. The error was logged."
	var be *broker.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &be) && be.Code != broker.EInternal:
		if status = httpapi.StatusOf(be.Code); status < 500 {
			msg = be.Message
		} else {
			u.d.Log.Error("dashboard request failed", "route", c.Route().Path, "code", be.Code, "err", be.Err)
			if be.Code == broker.EUnavailable {
				msg = "A service the dashboard needs is unavailable. Try again shortly."
			}
		}
	case errors.As(err, &fe) && fe.Code < 500:
		status, msg = fe.Code, fe.Message
	default:
		u.d.Log.Error("dashboard request failed", "route", c.Route().Path, "err", err)
	}
	data := u.data(c, "error", "Error")
	data.Body = errorBody{Status: status, Title: statusTitle(status), Message: msg}
	return u.renderStatus(c, status, "error", data)
}

type errorBody struct {
	Status  int
	Title   string
	Message string
}

func statusTitle(status int) string {
	switch status {
	case fiber.StatusBadRequest:
		return "That request was not valid"
	case fiber.StatusForbidden:
		return "Not allowed"
	case fiber.StatusNotFound:
		return "Not found"
	case fiber.StatusMethodNotAllowed:
		return "Method not allowed"
	case fiber.StatusTooManyRequests:
		return "Too many requests"
	case fiber.StatusServiceUnavailable:
		return "Temporarily unavailable"
	}
	if status >= 500 {
		return "Internal error"
	}
	return "Request failed"
}

// pageData is what every page template gets.
type pageData struct {
	Title     string
	Nav       string
	StoreName string
	Officer   *broker.Officer // nil on the sign-in and error pages of anonymous visitors
	CSRF      string
	Now       time.Time
	Body      any
}

func (u *UI) data(c *fiber.Ctx, nav, title string) *pageData {
	d := &pageData{Title: title, Nav: nav, StoreName: u.d.StoreName, Now: u.d.Now().UTC()}
	if s, ok := c.Locals(keySession).(*current); ok && s != nil {
		o := s.officer
		d.Officer, d.CSRF = &o, s.session.CSRF
	}
	return d
}

func (u *UI) render(c *fiber.Ctx, name string, d *pageData) error {
	return u.renderStatus(c, fiber.StatusOK, name, d)
}

// renderStatus executes the page into a buffer first, so that a template
// error becomes an error page rather than half a page.
func (u *UI) renderStatus(c *fiber.Ctx, status int, name string, d *pageData) error {
	var buf bytes.Buffer
	if err := u.pages.execute(&buf, name, d); err != nil {
		u.d.Log.Error("dashboard template failed", "page", name, "err", err)
		c.Status(fiber.StatusInternalServerError)
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		return c.SendString("internal error")
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(buf.Bytes())
}

// query builds a query string from name/value pairs, skipping empty values.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// Purposes of the dashboard's own audit entries.
const (
	purposeAccess = broker.PurposeOfficerAccess      // sign-in, sign-out
	purposeDSR    = broker.PurposeDataSubjectRequest // look-up, export (erasure: Rights writes "erasure")
	purposeReview = broker.PurposeComplianceReview   // audit log exports
)

// record appends an audit entry for an officer's action and returns its
// decision id.
// subject is the shopper's audit pseudonym (the dashboard never holds the
// id).
func (u *UI) record(ctx context.Context, actor, action string, purpose broker.Purpose, subject, resource, outcome, reason string) (string, error) {
	id := broker.NewID("dec")
	err := u.d.Audit.Record(ctx, broker.Event{Time: u.d.Now(), DecisionID: id, Actor: actor, Action: action,
		Purpose: purpose, SubjectPseudonym: subject, Resource: resource, Outcome: outcome, Reason: reason})
	if err != nil {
		return "", broker.Wrap(broker.EUnavailable, err, "the audit log is unavailable")
	}
	return id, nil
}
