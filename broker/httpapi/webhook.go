package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
)

// webhookVerify answers the Cloud API subscription handshake: the
// challenge echoed as received when the token matches, else 403. No
// signature is checked on this request (Meta sends none).
func (s *Server) webhookVerify(c *fiber.Ctx) error {
	if c.Query("hub.mode") != "subscribe" || !s.deps.WhatsApp.VerifyToken(c.Query("hub.verify_token")) {
		return broker.Errorf(broker.EForbidden, "verification failed")
	}
	// The challenge is caller text echoed back: plain text, never sniffed
	// as HTML, never cached.
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.SendString(c.Query("hub.challenge"))
}

// webhookReceive stores a signed notification durably, then answers 200.
// The signature is checked over the raw bytes as received; compressed
// bodies are refused (the signature covers what Meta sent, and a
// decompression bomb is not our problem to unpack).
func (s *Server) webhookReceive(c *fiber.Ctx) error {
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && enc != "identity" {
		return broker.Errorf(broker.EUnsupported, "compressed bodies are not accepted")
	}
	if err := s.deps.WhatsApp.Receive(c.UserContext(), c.Request().Body(), c.Get("X-Hub-Signature-256")); err != nil {
		return err
	}
	return c.SendString("EVENT_RECEIVED")
}
