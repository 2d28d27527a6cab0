package commerce

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// RetentionLock names the cross-process lock a sweep runs under.
const RetentionLock = "sieve:retention"

// RetentionReason is the audit reason code of an erasure by the sweeper.
const RetentionReason = "retention"

// DefaultRetentionBatch is how many rows (or shoppers) one statement (or
// round of erasures) handles, so that a sweep never holds locks on a large
// part of a table.
const DefaultRetentionBatch = 500

// Outbox kinds a purge applies to (outbox.kind).
const (
	OutboxWhatsApp = "whatsapp" // messages to the shopper: chat
	OutboxPartner  = "partner"  // webhooks to partners: order data
)

// RetentionStore is what the sweeper needs of the database. Every purge
// deletes at most limit rows and returns how many it deleted; the caller
// repeats until fewer come back.
type RetentionStore interface {
	// TryLock takes a lock shared by every process, without waiting.
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
	// InTx runs fn in a transaction (joined by the other methods).
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// ExpiredSubjects lists up to limit shoppers, not erased, whose last
	// interaction was before the cutoff, oldest first.
	ExpiredSubjects(ctx context.Context, before time.Time, limit int) ([]string, error)
	// ClaimExpiredSubject locks the shopper's row for the transaction in ctx
	// and reports whether it is still not erased and still expired: another
	// sweeper or an erasure request may have erased it, or the shopper may
	// have written since it was listed.
	ClaimExpiredSubject(ctx context.Context, subject string, before time.Time) (bool, error)
	// PurgeSessions deletes conversation state untouched since before.
	PurgeSessions(ctx context.Context, before time.Time, limit int) (int64, error)
	// PurgeOutbox deletes outbox items of the kind that were sent (or gave
	// up) before the cutoff, with their sealed payloads.
	PurgeOutbox(ctx context.Context, kind string, before time.Time, limit int) (int64, error)
	// PurgeMessageStatuses deletes delivery statuses last updated before.
	PurgeMessageStatuses(ctx context.Context, before time.Time, limit int) (int64, error)
	// PurgeInbox deletes processed inbound notifications received before.
	PurgeInbox(ctx context.Context, before time.Time, limit int) (int64, error)
}

// EraseFunc erases a shopper (Rights.Erase); it must join the transaction
// carried by ctx.
type EraseFunc func(ctx context.Context, subject string, actor broker.Party, reason string) error

// What each category of the policy data covers, and so what the sweeper
// does at its period. Categories held with the shopper (identity, orders,
// addresses, consent records) are all kept "after the last interaction"
// under the shopper's data key: the shopper is erased at the shortest of
// their periods. Retailer-internal fields are never stored (removed at the
// boundary), so there is nothing to purge.
var (
	shopperCategories = []string{"identity", "orders", "addresses", "consent_records"}
	purgeCategories   = []string{"chat", "inbound_webhooks", "delivery_statuses"}
	neverStored       = []string{"retailer_internal"}
	// heldCategories outlive an erasure under a legal hold (Holds): the
	// sweeper shreds them when the hold ends.
	heldCategories = []string{"invoice"}
)

// RetentionCategories returns every data category the sweeper knows how to
// apply, sorted.
func RetentionCategories() []string {
	return slices.Sorted(slices.Values(slices.Concat(shopperCategories, purgeCategories, neverStored, heldCategories)))
}

// Retention applies the retention periods of the policy data: it erases
// shoppers whose period has passed since their last interaction and purges
// chat, raw webhooks and delivery statuses past theirs. A sweep runs under
// a cross-process lock, so several brokerd never do the same work twice,
// and claims each shopper in the erasure's own transaction, so no shopper
// is erased twice.
type Retention struct {
	store   RetentionStore
	erase   EraseFunc
	periods map[string]time.Duration
	shopper time.Duration // the shortest period of shopperCategories
	batch   int
	// warnings, when set, warns shoppers before an erasure for inactivity
	// and holds the erasure until the warning's deadline (Rule 8(2)).
	warnings ErasureWarnings
}

// ErasureWarnings warns shoppers before an erasure for inactivity.
type ErasureWarnings interface {
	// Sweep cancels answered warnings and sends the ones due as of now.
	Sweep(ctx context.Context, now time.Time) (warned, cancelled int, err error)
	// Ready reports whether the shopper may be erased for inactivity now.
	Ready(ctx context.Context, subject string, now time.Time) (bool, error)
}

// SetWarnings makes every erasure for inactivity wait for a warning.
func (r *Retention) SetWarnings(w ErasureWarnings) { r.warnings = w }

// ShopperPeriod is how long a shopper is kept after their last interaction.
func (r *Retention) ShopperPeriod() time.Duration { return r.shopper }

// NewRetention checks the periods (policy data: category → period) against
// what the sweeper can apply. It fails closed: a category it does not know
// (data it would not purge) or a category it needs but the policy data does
// not name is an error, and so is a zero period for data kept with the
// shopper (it would erase every shopper at once). batch ≤ 0 means
// DefaultRetentionBatch.
func NewRetention(store RetentionStore, erase EraseFunc, periods map[string]time.Duration, batch int) (*Retention, error) {
	if store == nil || erase == nil {
		return nil, errors.New("retention: needs a store and an erasure function")
	}
	known := RetentionCategories()
	var errs []error
	for _, c := range slices.Sorted(maps.Keys(periods)) {
		if !slices.Contains(known, c) {
			errs = append(errs, fmt.Errorf("retention: policy data names category %q, which the sweeper cannot apply (it knows %v)", c, known))
		} else if periods[c] < 0 {
			errs = append(errs, fmt.Errorf("retention: category %q has a negative period", c))
		}
	}
	for _, c := range known {
		if _, ok := periods[c]; !ok {
			errs = append(errs, fmt.Errorf("retention: policy data has no period for category %q", c))
		}
	}
	r := &Retention{store: store, erase: erase, periods: maps.Clone(periods), batch: batch}
	if r.batch <= 0 {
		r.batch = DefaultRetentionBatch
	}
	for i, c := range shopperCategories {
		if p, ok := periods[c]; ok && p == 0 {
			errs = append(errs, fmt.Errorf("retention: category %q is kept with the shopper and cannot have a zero period", c))
		}
		if i == 0 || periods[c] < r.shopper {
			r.shopper = periods[c]
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// SweepResult counts what one sweep did.
type SweepResult struct {
	// Skipped is set when another process held the lock and swept instead.
	Skipped bool
	// Erased counts the shoppers erased.
	Erased int
	// Purged counts the rows deleted, by category.
	Purged map[string]int64
}

// retentionActor is who the audit entry of a sweeper erasure names.
var retentionActor = broker.Party{ID: "retention", Kind: broker.KindSystem}

// Sweep applies every period as of now, in batches, under the lock.
func (r *Retention) Sweep(ctx context.Context, now time.Time) (SweepResult, error) {
	res := SweepResult{Purged: map[string]int64{}}
	release, ok, err := r.store.TryLock(ctx, RetentionLock)
	if err != nil {
		return res, err
	}
	if !ok {
		res.Skipped = true
		return res, nil
	}
	defer release()
	if r.warnings != nil {
		if _, _, err := r.warnings.Sweep(ctx, now); err != nil {
			return res, fmt.Errorf("retention: warnings: %w", err)
		}
	}
	if res.Erased, err = r.eraseExpired(ctx, now.Add(-r.shopper), now); err != nil {
		return res, err
	}
	chat := now.Add(-r.periods["chat"])
	purges := []struct {
		category string
		fn       func(ctx context.Context, limit int) (int64, error)
	}{
		{"chat", func(ctx context.Context, n int) (int64, error) { return r.store.PurgeSessions(ctx, chat, n) }},
		{"chat", func(ctx context.Context, n int) (int64, error) {
			return r.store.PurgeOutbox(ctx, OutboxWhatsApp, chat, n)
		}},
		// A webhook to a partner carries order data; once sent, the copy
		// in the outbox is kept no longer than the orders themselves.
		{"orders", func(ctx context.Context, n int) (int64, error) {
			return r.store.PurgeOutbox(ctx, OutboxPartner, now.Add(-r.periods["orders"]), n)
		}},
		{"delivery_statuses", func(ctx context.Context, n int) (int64, error) {
			return r.store.PurgeMessageStatuses(ctx, now.Add(-r.periods["delivery_statuses"]), n)
		}},
		{"inbound_webhooks", func(ctx context.Context, n int) (int64, error) {
			return r.store.PurgeInbox(ctx, now.Add(-r.periods["inbound_webhooks"]), n)
		}},
	}
	for _, p := range purges {
		for {
			n, err := p.fn(ctx, r.batch)
			if err != nil {
				return res, fmt.Errorf("retention: purge %s: %w", p.category, err)
			}
			res.Purged[p.category] += n
			if n < int64(r.batch) {
				break
			}
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// eraseExpired erases, batch by batch, the shoppers whose last interaction
// is before cutoff. Each erasure is its own transaction, which first claims
// the shopper's row: a shopper already erased (by anyone) or active again
// is left alone.
func (r *Retention) eraseExpired(ctx context.Context, cutoff, now time.Time) (int, error) {
	erased := 0
	for {
		ids, err := r.store.ExpiredSubjects(ctx, cutoff, r.batch)
		if err != nil {
			return erased, err
		}
		progress := 0
		for _, id := range ids {
			var done bool
			err := r.store.InTx(ctx, func(ctx context.Context) error {
				done = false // InTx may run fn again after a serialisation failure
				ok, err := r.store.ClaimExpiredSubject(ctx, id, cutoff)
				if err != nil || !ok {
					return err
				}
				if r.warnings != nil {
					// Warned at least 48 hours ahead and silent since, or
					// not yet: the warning comes first.
					if ok, err := r.warnings.Ready(ctx, id, now); err != nil || !ok {
						return err
					}
				}
				done = true
				return r.erase(ctx, id, retentionActor, RetentionReason)
			})
			if err != nil {
				return erased, fmt.Errorf("retention: erase: %w", err)
			}
			if done {
				erased++
				progress++
			}
		}
		// A short batch is the last; a batch where every shopper was
		// claimed by someone else would come back the same: stop too.
		if len(ids) < r.batch || progress == 0 {
			return erased, nil
		}
	}
}
