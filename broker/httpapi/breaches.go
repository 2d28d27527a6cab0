package httpapi

import (
	"context"

	"github.com/gofiber/fiber/v2"
)

// BreachAPI lists the breaches recorded with the workbench (SPEC §11).
type BreachAPI interface {
	// List returns the breaches, newest first, as their JSON summaries.
	List(ctx context.Context) (any, error)
}

func (s *Server) breaches(c *fiber.Ctx) error {
	out, err := s.deps.Breaches.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"breaches": out})
}
