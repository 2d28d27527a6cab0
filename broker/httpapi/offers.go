package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
)

// offerRoutes serves a store's order offers (SPEC §4, §9).
func (s *Server) offerRoutes(v1 fiber.Router) {
	v1.Get("/offers", s.partner(broker.ScopeOrdersWrite), s.listOffers)
	v1.Post("/offers/:id/accept", s.partner(broker.ScopeOrdersWrite), s.acceptOffer)
	v1.Post("/offers/:id/decline", s.partner(broker.ScopeOrdersWrite), s.declineOffer)
}

func (s *Server) listOffers(c *fiber.Ctx) error {
	offers, err := s.deps.Shop.OpenOffers(c.UserContext(), partnerOf(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"offers": offers})
}

func (s *Server) acceptOffer(c *fiber.Ctx) error {
	res, err := s.deps.Shop.AcceptOffer(c.UserContext(), partnerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}

func (s *Server) declineOffer(c *fiber.Ctx) error {
	res, err := s.deps.Shop.DeclineOffer(c.UserContext(), partnerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}
