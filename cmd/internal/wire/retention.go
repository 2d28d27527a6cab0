package wire

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/commerce"
)

// RunRetention sweeps every interval until ctx ends; the first sweep comes
// soon after start.
func (s *System) RunRetention(ctx context.Context, every time.Duration) error {
	return s.Retention.Run(ctx, 10*time.Second, every, s.Log)
}

// SweepRetention runs one sweep as of now.
func (s *System) SweepRetention(ctx context.Context, now time.Time) (commerce.SweepResult, error) {
	return s.Retention.Sweep(ctx, now)
}
