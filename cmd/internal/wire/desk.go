package wire

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
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

// breachAPI adapts the workbench to the HTTP layer.
type breachAPI struct{ s *System }

// List implements httpapi.BreachAPI: the breaches with their 72-hour
// report (no personal data in either).
func (a *breachAPI) List(ctx context.Context) (any, error) {
	bs, err := a.s.Breaches.List(ctx)
	if err != nil {
		return nil, err
	}
	type item struct {
		commerce.Breach
		HoursLeft float64 `json:"hours_left"`
	}
	out := make([]item, 0, len(bs))
	for _, b := range bs {
		out = append(out, item{Breach: b, HoursLeft: time.Until(b.BoardDue).Hours()})
	}
	return out, nil
}
