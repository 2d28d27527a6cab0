package broker

import (
	"context"
	"time"
)

// Every runs round after first and then every period after the previous
// round ended, until ctx ends; it returns nil then. A round's failure is
// the round's to report (log it and let the next one try again): the
// background jobs (retention sweep, key rotation, escalation, offer
// expiry) must never stop on one. Rounds never overlap, and a slow round
// delays the next rather than queueing them.
func Every(ctx context.Context, first, period time.Duration, round func(ctx context.Context)) error {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		round(ctx)
		t.Reset(period)
	}
}
