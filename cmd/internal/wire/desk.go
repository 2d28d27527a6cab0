package wire

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// RunDesk escalates overdue grievances every interval until ctx ends.
// Several processes may run it: each ticket is escalated once (its row is
// locked and skipped by the others).
func (s *System) RunDesk(ctx context.Context, every time.Duration) error {
	return broker.Every(ctx, every, every, func(ctx context.Context) {
		n, err := s.Desk.Escalate(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.Log.Warn("grievance escalation", "err", err)
		case n > 0:
			s.Log.Info("grievances escalated", "count", n)
		}
	})
}

// verifiedSize verifies the audit log (every pending entry integrated
// first, so the breach sees the releases made until now) and returns the
// size it verified.
func (s *System) verifiedSize(ctx context.Context) (uint64, error) {
	if _, err := s.IntegrateAudit(ctx); err != nil {
		return 0, err
	}
	size, _, err := s.VerifyAudit(ctx, nil)
	return size, err
}

// breachAPI gives the HTTP layer the workbench's list (broker/httpapi
// cannot name commerce's types).
type breachAPI struct{ s *System }

// List implements httpapi.BreachAPI.
func (a *breachAPI) List(ctx context.Context) (any, error) { return a.s.Breaches.List(ctx) }
