package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
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

// OfficerAuth recognises a logged-in compliance officer from the session
// cookie (and, for state-changing requests, a valid CSRF token).
type OfficerAuth interface {
	Officer(c *fiber.Ctx, mutating bool) (broker.Party, bool)
}

const keyActor ctxKey = 10

// Compliance authorises an officer session or a bearer token with scope;
// the handlers after it read who acts with ActorOf.
func (s *Server) Compliance(scope broker.Scope) fiber.Handler {
	partnerAuth := s.Partner(scope)
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

// ActorOf is who Compliance admitted: the signed-in officer, or the
// compliance client with its scopes.
func ActorOf(c *fiber.Ctx) broker.Party {
	if p, ok := c.Locals(keyActor).(broker.Party); ok {
		return p
	}
	p := PartnerOf(c)
	return broker.Party{ID: p.ID, Kind: p.Kind, Scopes: p.Scopes}
}

func (s *Server) complianceRoutes() {
	app := s.App
	if s.deps.Audit != nil {
		app.Get("/v1/audit/entries", s.Compliance(broker.ScopeAuditRead), s.auditEntries)
		// The transparency endpoints too (SPEC §4): the checkpoint's tree
		// size and timing tell outsiders how much the broker releases.
		app.Get("/v1/audit/checkpoint", s.Compliance(broker.ScopeAuditRead), s.auditCheckpoint)
		app.Get("/v1/audit/proof/inclusion", s.Compliance(broker.ScopeAuditRead), s.auditInclusion)
		app.Get("/v1/audit/proof/consistency", s.Compliance(broker.ScopeAuditRead), s.auditConsistency)
		if _, ok := s.deps.Audit.(AuditTiles); ok {
			app.Get("/v1/audit/tile/*", s.Compliance(broker.ScopeAuditRead), s.auditTile)
		}
	}
	if s.deps.Reports != nil {
		app.Get("/v1/reports/processing", s.Compliance(broker.ScopeAuditRead), s.reportProcessing)
	}
	if s.deps.Breaches != nil {
		app.Get("/v1/breaches", s.Compliance(broker.ScopeAuditRead), s.breaches)
	}
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

// OfficerAction audits an officer's (or compliance client's) own action
// on a shopper (a data-subject request) and returns the entry's decision
// id; EUnavailable when the log cannot take it, so the caller answers
// nothing it could not record.
func (s *Server) OfficerAction(c *fiber.Ctx, action, subject, reason string) (string, error) {
	id := broker.NewID("dec")
	if s.deps.Audit == nil {
		return id, nil
	}
	actor := ActorOf(c)
	err := s.deps.Audit.Record(c.UserContext(), broker.Event{DecisionID: id, Actor: actor.Actor(),
		Action: action, Purpose: broker.PurposeDataSubjectRequest, Subject: subject, Resource: "subject",
		Outcome: audit.OutcomeDone, Reason: reason})
	if err != nil {
		return "", broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
	}
	return id, nil
}
