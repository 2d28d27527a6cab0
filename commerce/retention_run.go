package commerce

import (
	"context"
	"log/slog"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// Run sweeps (Sweep) after first and then every interval until ctx ends.
// Several processes may run it: each sweep takes a lock shared by every
// process, and the processes that do not get it skip. A failed sweep is
// logged and tried again at the next interval; it never stops the loop.
func (r *Retention) Run(ctx context.Context, first, every time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	return broker.Every(ctx, first, every, func(ctx context.Context) {
		res, err := r.Sweep(ctx, time.Now())
		switch {
		case err != nil:
			log.Warn("retention sweep", "err", err)
		case res.Erased > 0 || len(res.Purged) > 0:
			log.Info("retention sweep", "erased", res.Erased, "purged", res.Purged)
		}
	})
}
