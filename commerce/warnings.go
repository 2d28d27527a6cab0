package commerce

import (
	"context"
	"fmt"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// MinErasureWarning is the least notice before an erasure for inactivity:
// DPDP Rules 2025, Rule 8(2) asks for at least 48 hours.
const MinErasureWarning = 48 * time.Hour

// ErasureWarningTemplate is the approved WhatsApp template the warning is
// sent as (outside the 24-hour window only templates may be sent).
const ErasureWarningTemplate = "erasure_warning"

// Audit codes of the warning.
const (
	WarnReasonSent      = "inactivity_warning_sent"
	WarnReasonCancelled = "inactivity_warning_cancelled"
	PurposeWarning      = broker.PurposeRetention
)

// Warning is a pending warning before an erasure for inactivity.
type Warning struct {
	Subject    string
	WarnedAt   time.Time
	EraseAfter time.Time
}

// WarningStore keeps the warnings.
type WarningStore interface {
	WarnCandidates(ctx context.Context, before time.Time, limit int) ([]string, error)
	PutWarning(ctx context.Context, subject string, warnedAt, eraseAfter time.Time) error
	TakeCancelledWarnings(ctx context.Context, limit int) ([]string, error)
	WarningReady(ctx context.Context, subject string, now time.Time) (bool, error)
	ListWarnings(ctx context.Context, limit int) ([]Warning, error)
}

// Warnings tells a shopper, at least Lead ahead, that their data will be
// erased for inactivity, and holds the erasure until then; a message from
// them before the deadline cancels it (audited both ways).
type Warnings struct {
	Service *Service
	Store   WarningStore
	// Lead is how long before the erasure the warning goes out; less than
	// MinErasureWarning is raised to it.
	Lead time.Duration
	// Period is the shopper's retention period (after the last interaction).
	Period time.Duration
	// DefaultStore is the WhatsApp phone-number id a shopper without an
	// order is written from (WHATSAPP_PHONE_NUMBER_ID).
	DefaultStore string
}

// PendingErasure is a warning as officers see it: the shopper, by audit
// pseudonym only, is erased after EraseAfter unless they write.
type PendingErasure struct {
	Pseudonym  string
	WarnedAt   time.Time
	EraseAfter time.Time
}

// List returns up to limit pending warnings as officers see them.
func (w *Warnings) List(ctx context.Context, limit int) ([]PendingErasure, error) {
	list, err := w.Store.ListWarnings(ctx, limit)
	if err != nil {
		return nil, err
	}
	pseudo := w.Service.Releaser.Pseudonyms()
	out := make([]PendingErasure, 0, len(list))
	for _, x := range list {
		out = append(out, PendingErasure{Pseudonym: pseudo.Audit(x.Subject), WarnedAt: x.WarnedAt, EraseAfter: x.EraseAfter})
	}
	return out, nil
}

func (w *Warnings) lead() time.Duration { return max(w.Lead, MinErasureWarning) }

// Sweep cancels the warnings the shopper answered, then warns every
// shopper whose erasure is due within the lead time. now is the sweep's
// clock (tests travel in time).
func (w *Warnings) Sweep(ctx context.Context, now time.Time) (warned, cancelled int, err error) {
	s := w.Service
	for {
		ids, err := w.Store.TakeCancelledWarnings(ctx, 256)
		if err != nil {
			return warned, cancelled, err
		}
		for _, id := range ids {
			if err := s.record(ctx, broker.Event{Time: now, Actor: "system:retention", Action: "warning cancelled", Purpose: PurposeWarning,
				Subject: id, Resource: "subject", Outcome: audit.OutcomeDone,
				Reason: WarnReasonCancelled}); err != nil {
				return warned, cancelled, err
			}
			cancelled++
		}
		if len(ids) < 256 {
			break
		}
	}
	ids, err := w.Store.WarnCandidates(ctx, now.Add(w.lead()-w.Period), 1000)
	if err != nil {
		return warned, cancelled, err
	}
	for _, id := range ids {
		err := s.Tx.InTx(ctx, func(ctx context.Context) error {
			row, err := s.Subjects.GetSubject(ctx, id)
			if err != nil || row.Erased {
				return err
			}
			// Never earlier than the period allows, never sooner than the
			// lead time after the warning.
			after := now.Add(w.lead())
			if due := row.LastInteraction.Add(w.Period); due.After(after) {
				after = due
			}
			if err := w.Store.PutWarning(ctx, id, now, after); err != nil {
				return err
			}
			body := fmt.Sprintf("We have not heard from you for a long time. Your data will be erased after %s "+
				"(invoices are kept as the tax law requires). Send any message before then to keep it.",
				after.In(ist).Format("2 Jan 2006 15:04 MST"))
			store := w.DefaultStore
			if orders, err := s.Orders.OrdersOfSubject(ctx, id); err == nil && len(orders) > 0 && orders[len(orders)-1].Store != "" {
				store = orders[len(orders)-1].Store
			}
			if err := s.SendToShopper(ctx, id, store, Reply{Kind: "template", Template: ErasureWarningTemplate, Body: body}); err != nil {
				return err
			}
			return s.record(ctx, broker.Event{Time: now, Actor: "system:retention", Action: "warning", Purpose: PurposeWarning,
				Subject: id, Resource: "subject", Outcome: audit.OutcomeDone,
				Reason: WarnReasonSent})
		})
		if err != nil {
			return warned, cancelled, err
		}
		warned++
	}
	if warned > 0 {
		s.WakeSender()
	}
	return warned, cancelled, nil
}

// Ready reports whether an erasure for inactivity of subject may go ahead
// at now: warned at least the lead time before, silent since.
func (w *Warnings) Ready(ctx context.Context, subject string, now time.Time) (bool, error) {
	return w.Store.WarningReady(ctx, subject, now)
}
