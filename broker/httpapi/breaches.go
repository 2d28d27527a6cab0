package httpapi

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
)

// BreachAPI lists the breaches recorded with the workbench (SPEC §11).
type BreachAPI interface {
	// List returns the breaches, newest first, as their JSON summaries.
	List(ctx context.Context) (any, error)
}

// deskRoutes mounts the rights desk's compliance routes.
func (s *Server) deskRoutes() {
	if s.deps.Desk != nil {
		s.App.Get("/v1/grievances", s.compliance(broker.ScopeAuditRead), s.grievances)
	}
	if s.deps.Breaches != nil {
		s.App.Get("/v1/breaches", s.compliance(broker.ScopeAuditRead), s.breaches)
	}
}

// grievances lists tickets (?status=open|overdue|resolved) with the desk's
// SLA report; texts stay sealed (an officer reads one in /ui, audited).
func (s *Server) grievances(c *fiber.Ctx) error {
	ctx := c.UserContext()
	gs, err := s.deps.Desk.List(ctx, c.Query("status"), 1000)
	if err != nil {
		return err
	}
	sla, err := s.deps.Desk.SLA(ctx)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"grievances": gs, "sla": sla})
}

func (s *Server) breaches(c *fiber.Ctx) error {
	out, err := s.deps.Breaches.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"breaches": out})
}
