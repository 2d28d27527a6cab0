package wire

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// RunRetention erases, every interval, the shoppers whose retention period
// (policy data, category "identity") has passed since their last
// interaction, and purges processed inbound events past theirs. Erasure is
// idempotent, so several processes sweeping together do no harm; an
// advisory lock keeps them from doing the work twice.
func (s *System) RunRetention(ctx context.Context, every time.Duration) error {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := s.SweepRetention(ctx, time.Now()); err != nil {
			s.Log.Warn("retention sweep", "err", err)
		} else if n > 0 {
			s.Log.Info("retention sweep erased shoppers", "count", n)
		}
		t.Reset(every)
	}
}

// SweepRetention runs one sweep as of now and returns how many shoppers it
// erased.
func (s *System) SweepRetention(ctx context.Context, now time.Time) (int, error) {
	identity := s.Policy.RetentionFor("identity")
	if identity <= 0 {
		return 0, nil
	}
	erased := 0
	for {
		ids, err := s.DB.ExpiredSubjects(ctx, now.Add(-identity), 100)
		if err != nil || len(ids) == 0 {
			break
		}
		for _, id := range ids {
			if err := s.Rights.Erase(ctx, id, broker.Party{ID: "retention", Kind: broker.KindSystem},
				"retention"); err != nil { // commerce.EraseRetention
				return erased, err
			}
			erased++
		}
		if len(ids) < 100 {
			break
		}
	}
	if inbox := s.Policy.RetentionFor("inbound_webhooks"); inbox > 0 {
		if err := s.DB.PurgeInbox(ctx, now.Add(-inbox)); err != nil {
			return erased, err
		}
	}
	return erased, nil
}
