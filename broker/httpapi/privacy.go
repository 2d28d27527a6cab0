package httpapi

import (
	"regexp"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
)

// langParam is an ISO 639 language code, as the notice files are named.
var langParam = regexp.MustCompile(`^[a-z]{2,3}$`)

// privacyRoutes serves the privacy notice's full text (public: the chat
// summary links to it).
func (s *Server) privacyRoutes() {
	if s.deps.Privacy != nil {
		s.App.Get("/privacy/:lang", s.privacyPage)
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

// ComplianceAny admits an officer or a compliance client holding any one
// of the scopes.
func (s *Server) ComplianceAny(scopes ...broker.Scope) fiber.Handler {
	first := s.Compliance(scopes[0])
	return func(c *fiber.Ctx) error {
		err := first(c)
		for _, sc := range scopes[1:] {
			if broker.ErrorCode(err) != broker.EForbidden || c.Locals(keyPartner) != nil {
				break
			}
			err = s.Partner(sc)(c)
		}
		return err
	}
}
