package httpapi

import (
	"regexp"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
)

// langParam is an ISO 639 language code, as the notice files are named.
var langParam = regexp.MustCompile(`^[a-z]{2,3}$`)

// consentRoutes serves the privacy notice's full text (public: the chat
// summary links to it) and the compliance export of consent artefacts.
func (s *Server) consentRoutes() {
	if s.deps.Privacy != nil {
		s.App.Get("/privacy/:lang", s.privacyPage)
	}
	if s.deps.Rights != nil && s.deps.Shop != nil && s.deps.Shop.Consents != nil {
		s.App.Post("/v1/subjects/consents", s.complianceAny(broker.ScopeAuditRead, broker.ScopeSubjectsWrite), s.subjectConsents)
	}
}

// privacyPage serves GET /privacy/{lang}: the notice in that language, as
// HTML generated from policy data; an unknown language is a 404.
func (s *Server) privacyPage(c *fiber.Ctx) error {
	lang := c.Params("lang")
	if !langParam.MatchString(lang) {
		return broker.Errorf(broker.ENotFound, "no notice in that language")
	}
	page, ok := s.deps.Privacy(lang)
	if !ok {
		return broker.Errorf(broker.ENotFound, "no notice in that language")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderContentLanguage, lang)
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(page)
}

// complianceAny admits an officer or a compliance client holding any one
// of the scopes.
func (s *Server) complianceAny(scopes ...broker.Scope) fiber.Handler {
	first := s.compliance(scopes[0])
	return func(c *fiber.Ctx) error {
		err := first(c)
		for _, sc := range scopes[1:] {
			if broker.ErrorCode(err) != broker.EForbidden || c.Locals(keyPartner) != nil {
				break
			}
			err = s.partner(sc)(c)
		}
		return err
	}
}

// subjectConsents answers POST /v1/subjects/consents {"wa_id"} with the
// shopper's consent artefacts (SPEC §10), itself an audited access.
func (s *Server) subjectConsents(c *fiber.Ctx) error {
	var b subjectBody
	if err := decodeJSON(c, &b, true); err != nil {
		return err
	}
	row, err := s.subjectFromWaID(c, b.WaID, b.UserID)
	if err != nil {
		return err
	}
	ex, err := s.deps.Shop.ConsentsOf(c.UserContext(), row.ID)
	if err != nil {
		return err
	}
	id, err := s.officerAction(c, "consents", row.ID, "access_request")
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", id)
	return c.JSON(ex)
}
