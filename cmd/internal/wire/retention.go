package wire

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/policies"
)

// NewRetention builds the retention sweeper from the policy data's periods;
// NewRetention refuses periods it cannot apply, so brokerd does not start
// rather than keep data past a period it publishes.
func NewRetention(db commerce.RetentionStore, pol *policies.Engine, erase commerce.EraseFunc) (*commerce.Retention, error) {
	return commerce.NewRetention(db, erase, pol.Data().RetentionPeriods(), 0)
}

// RunRetention sweeps every interval until ctx ends; the first sweep comes
// soon after start.
func (s *System) RunRetention(ctx context.Context, every time.Duration) error {
	return s.Retention.Run(ctx, 10*time.Second, every, s.Log)
}

// SweepRetention runs one sweep as of now.
func (s *System) SweepRetention(ctx context.Context, now time.Time) (commerce.SweepResult, error) {
	return s.Retention.Sweep(ctx, now)
}
