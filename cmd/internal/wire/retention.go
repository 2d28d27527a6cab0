package wire

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/policies"
)

// NewRetention builds the retention sweeper from the policy data's periods.
// A category the sweeper cannot apply, or one it needs that the data does
// not name, is an error: brokerd does not start rather than keep data past
// a period it publishes.
func NewRetention(db commerce.RetentionStore, pol *policies.Engine, erase commerce.EraseFunc) (*commerce.Retention, error) {
	periods := map[string]time.Duration{}
	for name, r := range pol.Data().Retention {
		periods[name] = r.Period()
	}
	return commerce.NewRetention(db, erase, periods, 0)
}

// RunRetention sweeps every interval until ctx ends; the first sweep comes
// soon after start. Several processes may run it: each sweep takes a
// PostgreSQL advisory lock, and the processes that do not get it skip.
func (s *System) RunRetention(ctx context.Context, every time.Duration) error {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := s.SweepRetention(ctx, time.Now())
		switch {
		case err != nil:
			s.Log.Warn("retention sweep", "err", err)
		case res.Erased > 0 || len(res.Purged) > 0:
			s.Log.Info("retention sweep", "erased", res.Erased, "purged", res.Purged)
		}
		t.Reset(every)
	}
}

// SweepRetention runs one sweep as of now.
func (s *System) SweepRetention(ctx context.Context, now time.Time) (commerce.SweepResult, error) {
	return s.Retention.Sweep(ctx, now)
}
