package httpapi

import (
	"encoding/base64"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(c *fiber.Ctx, status int, code, desc string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.Status(status).JSON(fiber.Map{"error": code, "error_description": desc})
}

// oauthToken is the client-credentials token endpoint (RFC 6749 §4.4).
func (s *Server) oauthToken(c *fiber.Ctx) error {
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	if !strings.HasPrefix(ct, fiber.MIMEApplicationForm) {
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "content type must be application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(c.Body()))
	if err != nil {
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "malformed form body")
	}
	if len(c.Request().URI().QueryString()) > 0 {
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "parameters must be sent in the body")
	}
	var user, pass string
	hasBasic := false
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, cred, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Basic") || len(h) > MaxAuthorization {
			// RFC 6749 §5.2: a client that tried the Authorization header
			// gets a challenge naming the scheme we support.
			c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="sieve"`)
			return oauthError(c, fiber.StatusUnauthorized, "invalid_client", "unsupported client authentication")
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		u, p, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="sieve"`)
			return oauthError(c, fiber.StatusUnauthorized, "invalid_client", "malformed Basic credentials")
		}
		// RFC 6749 §2.3.1: client id and secret are form-encoded first.
		if user, err = url.QueryUnescape(u); err != nil {
			user = u
		}
		if pass, err = url.QueryUnescape(p); err != nil {
			pass = p
		}
		hasBasic = true
	}
	status, headers, body := s.deps.OAuth(c.UserContext(), form, user, pass, hasBasic, s.ClientIP(c))
	for k, v := range headers {
		c.Set(k, v)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(status).Send(body)
}
