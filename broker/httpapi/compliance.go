package httpapi

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// AuditAPI serves the audit log: entries, signed checkpoints and proofs.
type AuditAPI interface {
	Checkpoint(ctx context.Context) (string, error)
	Inclusion(ctx context.Context, index, size uint64) (any, error)
	Consistency(ctx context.Context, from, to uint64) (any, error)
	Entries(ctx context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error)
	// Record appends the entry of an officer's or partner's own action
	// (the broker's Recorder builds it).
	Record(ctx context.Context, ev broker.Event) error
}

// Reports builds the reports an auditor asks for.
type Reports interface {
	// Processing is the GDPR Art. 30 record of processing activities.
	Processing(ctx context.Context) (any, error)
}

// SubjectRights is what the compliance API asks of the rights desk: find a
// shopper by identifier, list their disclosures, release their export and
// erase them. *commerce.Rights implements it; tests use a fake.
type SubjectRights interface {
	// Resolve finds the shopper by wa_id or by user_id (a BSUID), exactly
	// one of them; ENotFound when there is none.
	Resolve(ctx context.Context, waID, userID string) (commerce.SubjectRow, error)
	// Disclosures lists who received what about the shopper.
	Disclosures(ctx context.Context, subject string) ([]commerce.Disclosure, error)
	// ReleaseExport releases the shopper's data to party through the
	// pipeline; the decision names the audit entry, even on error.
	ReleaseExport(ctx context.Context, subject string, party broker.Party) (commerce.Export, broker.Decision, error)
	// Erase crypto-shreds the shopper, audited with reason (a code).
	Erase(ctx context.Context, subject string, actor broker.Party, reason string) error
}

var _ SubjectRights = (*commerce.Rights)(nil)

// OfficerAuth recognises a logged-in compliance officer from the session
// cookie (and, for state-changing requests, a valid CSRF token).
type OfficerAuth interface {
	Officer(c *fiber.Ctx, mutating bool) (broker.Party, bool)
}

const keyActor ctxKey = 10

// compliance authorises an officer session or a bearer token with scope.
func (s *Server) compliance(scope broker.Scope) fiber.Handler {
	partnerAuth := s.partner(scope)
	return func(c *fiber.Ctx) error {
		if s.deps.Officers != nil {
			// HEAD has GET's meaning (RFC 9110 §9.3.2): no CSRF token.
			if o, ok := s.deps.Officers.Officer(c, !readOnly(c.Method())); ok {
				c.Locals(keyActor, o)
				return c.Next()
			}
		}
		if s.deps.Auth == nil {
			return broker.Errorf(broker.EUnauthorized, "sign in at /ui or use a bearer token")
		}
		return partnerAuth(c)
	}
}

// readOnly reports the methods that change nothing (RFC 9110 §9.2.1).
func readOnly(method string) bool {
	return method == fiber.MethodGet || method == fiber.MethodHead
}

func actorOf(c *fiber.Ctx) broker.Party {
	if p, ok := c.Locals(keyActor).(broker.Party); ok {
		return p
	}
	p := partnerOf(c)
	return broker.Party{ID: p.ID, Kind: p.Kind, Scopes: p.Scopes}
}

func (s *Server) complianceRoutes() {
	app := s.App
	if s.deps.Audit != nil {
		app.Get("/v1/audit/entries", s.compliance(broker.ScopeAuditRead), s.auditEntries)
		// The transparency endpoints too (SPEC §4): the checkpoint's tree
		// size and timing tell outsiders how much the broker releases.
		app.Get("/v1/audit/checkpoint", s.compliance(broker.ScopeAuditRead), s.auditCheckpoint)
		app.Get("/v1/audit/proof/inclusion", s.compliance(broker.ScopeAuditRead), s.auditInclusion)
		app.Get("/v1/audit/proof/consistency", s.compliance(broker.ScopeAuditRead), s.auditConsistency)
		if _, ok := s.deps.Audit.(AuditTiles); ok {
			app.Get("/v1/audit/tile/*", s.compliance(broker.ScopeAuditRead), s.auditTile)
		}
	}
	if s.deps.Reports != nil {
		app.Get("/v1/reports/processing", s.compliance(broker.ScopeAuditRead), s.reportProcessing)
	}
	if s.deps.Subjects != nil && s.deps.Pseudonyms != nil {
		app.Get("/v1/subjects/disclosures", s.compliance(broker.ScopeAuditRead), s.disclosures)
		app.Post("/v1/subjects/disclosures", s.compliance(broker.ScopeAuditRead), s.disclosures)
		app.Post("/v1/subjects/export", s.compliance(broker.ScopeSubjectsWrite), s.subjectExport)
		app.Post("/v1/subjects/erase", s.compliance(broker.ScopeSubjectsWrite), s.subjectErase)
	}
	s.deskRoutes()
}

// ParseAuditFilter reads the audit filter from a query string.
func ParseAuditFilter(c *fiber.Ctx) (broker.AuditFilter, error) {
	f := broker.AuditFilter{Subject: c.Query("subject"), Actor: c.Query("partner"), Purpose: c.Query("purpose"),
		Outcome: c.Query("outcome"), Action: c.Query("action")}
	for _, v := range []string{f.Subject, f.Actor, f.Purpose, f.Outcome, f.Action} {
		if len(v) > 100 {
			return f, broker.Errorf(broker.EInvalid, "filter value too long")
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.Query(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, broker.Errorf(broker.EInvalid, "%s must be an RFC 3339 time", p.name)
			}
			*p.dst = t
		}
	}
	return f, nil
}

func (s *Server) auditEntries(c *fiber.Ctx) error {
	f, err := ParseAuditFilter(c)
	if err != nil {
		return err
	}
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return broker.Errorf(broker.EInvalid, "limit must be 1 to 500")
		}
		limit = n
	}
	if len(c.Query("cursor")) > 200 {
		return broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	entries, next, err := s.deps.Audit.Entries(c.UserContext(), f, c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []audit.Entry{}
	}
	var nc any
	if next != "" {
		nc = next
	}
	return c.JSON(fiber.Map{"entries": entries, "next_cursor": nc})
}

func (s *Server) auditCheckpoint(c *fiber.Ctx) error {
	note, err := s.deps.Audit.Checkpoint(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.SendString(note)
}

func queryUint(c *fiber.Ctx, name string) (uint64, error) {
	v := c.Query(name)
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, broker.Errorf(broker.EInvalid, "%s must be a non-negative integer", name)
	}
	return n, nil
}

func (s *Server) auditInclusion(c *fiber.Ctx) error {
	idx, err := queryUint(c, "index")
	if err != nil {
		return err
	}
	size, err := queryUint(c, "size")
	if err != nil {
		return err
	}
	p, err := s.deps.Audit.Inclusion(c.UserContext(), idx, size)
	if err != nil {
		return err
	}
	return c.JSON(p)
}

func (s *Server) auditConsistency(c *fiber.Ctx) error {
	from, err := queryUint(c, "from")
	if err != nil {
		return err
	}
	to, err := queryUint(c, "to")
	if err != nil {
		return err
	}
	p, err := s.deps.Audit.Consistency(c.UserContext(), from, to)
	if err != nil {
		return err
	}
	return c.JSON(p)
}

func (s *Server) reportProcessing(c *fiber.Ctx) error {
	r, err := s.deps.Reports.Processing(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(r)
}

// officerAction audits an officer's (or compliance client's) own action.
func (s *Server) officerAction(c *fiber.Ctx, action, subject, reason string) (string, error) {
	id := broker.NewID("dec")
	if s.deps.Audit == nil {
		return id, nil
	}
	actor := actorOf(c)
	err := s.deps.Audit.Record(c.UserContext(), broker.Event{DecisionID: id, Actor: actor.Actor(),
		Action: action, Purpose: broker.PurposeDataSubjectRequest, Subject: subject, Resource: "subject",
		Outcome: audit.OutcomeDone, Reason: reason})
	if err != nil {
		return "", broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
	}
	return id, nil
}

// subjectFromWaID resolves the shopper by wa_id or by user_id (a BSUID):
// exactly one of them.
func (s *Server) subjectFromWaID(c *fiber.Ctx, wa, userID string) (commerce.SubjectRow, error) {
	row, err := s.deps.Subjects.Resolve(c.UserContext(), wa, userID)
	if broker.IsNotFound(err) {
		return row, broker.Errorf(broker.ENotFound, "no shopper with that identifier")
	}
	return row, err
}

func (s *Server) disclosures(c *fiber.Ctx) error {
	var b subjectBody
	if c.Method() == fiber.MethodPost {
		if err := decodeJSON(c, &b, true); err != nil {
			return err
		}
	} else {
		b.WaID, b.UserID = c.Query("wa_id"), c.Query("user_id")
	}
	row, err := s.subjectFromWaID(c, b.WaID, b.UserID)
	if err != nil {
		return err
	}
	ds, err := s.deps.Subjects.Disclosures(c.UserContext(), row.ID)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []commerce.Disclosure{} // the documented shape is a list, never null
	}
	id, err := s.officerAction(c, "disclosures", row.ID, "access_request")
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", id)
	return c.JSON(fiber.Map{"subject": s.deps.Pseudonyms.Audit(row.ID), "disclosures": ds})
}

type subjectBody struct {
	WaID    string `json:"wa_id"`
	UserID  string `json:"user_id"` // a BSUID, instead of wa_id
	Confirm bool   `json:"confirm"`
	Reason  string `json:"reason"`
}

func (s *Server) subjectExport(c *fiber.Ctx) error {
	var b subjectBody
	if err := decodeJSON(c, &b, true); err != nil {
		return err
	}
	row, err := s.subjectFromWaID(c, b.WaID, b.UserID)
	if err != nil {
		return err
	}
	// The export is a release to the caller through the pipeline: its
	// entry is the answer's decision and the shopper's disclosures list it.
	ex, d, err := s.deps.Subjects.ReleaseExport(c.UserContext(), row.ID, actorOf(c))
	if d.ID != "" {
		c.Set("X-Decision-Id", d.ID)
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="subject-export.json"`)
	return c.JSON(ex)
}

func (s *Server) subjectErase(c *fiber.Ctx) error {
	var b subjectBody
	if err := decodeJSON(c, &b, true); err != nil {
		return err
	}
	if !b.Confirm {
		return broker.Errorf(broker.EInvalid, "erasure needs \"confirm\": true")
	}
	// The reason is a code from a fixed list (commerce.EraseReasons),
	// never text: it goes into the immutable log.
	reason := b.Reason
	if reason == "" {
		reason = commerce.EraseRequest
	}
	if !commerce.ValidEraseReason(reason) {
		return broker.Errorf(broker.EInvalid, "reason must be one of %s", strings.Join(commerce.EraseReasons, ", "))
	}
	row, err := s.subjectFromWaID(c, b.WaID, b.UserID)
	if err != nil {
		return err
	}
	if err := s.deps.Subjects.Erase(c.UserContext(), row.ID, actorOf(c), reason); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"status": "erased", "subject": s.deps.Pseudonyms.Audit(row.ID)})
}
