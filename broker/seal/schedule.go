package seal

import (
	"context"
	"log/slog"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// CheckInterval is how often a process looks whether a rotation or a
// retirement is due under a rotation period: an eighth of it, between a
// minute and an hour. It adds at most two intervals to the backup bound.
func CheckInterval(rotation time.Duration) time.Duration {
	return min(time.Hour, max(time.Minute, rotation/8))
}

// RunSchedule runs the schedule until ctx ends: a round after first, then
// one every CheckInterval(r.Every). Only one process works at a time (Lock);
// the others skip. A failed round is logged and tried again; an unusable
// schedule is an error at once.
func (r *Rotation) RunSchedule(ctx context.Context, first time.Duration, log *slog.Logger) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	return broker.Every(ctx, first, CheckInterval(r.Every), func(ctx context.Context) {
		res, err := r.Run(ctx, false)
		switch {
		case err != nil:
			log.Warn("age key rotation", "err", err)
		case res.Rotated != "" || len(res.Retired) > 0:
			// Key ids are public (a hash of the recipient).
			log.Info("age key rotation", "rotated", res.Rotated, "rewrapped", res.Rewrapped, "retired", res.Retired)
		}
	})
}
