package commerce

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Data key categories (broker/seal): contact+chat, fulfilment, invoice.
const (
	KeyContact    = "contact"
	KeyFulfilment = "fulfilment"
	KeyInvoice    = "invoice"
)

// KeyCategories lists the data key categories.
var KeyCategories = []string{KeyContact, KeyFulfilment, KeyInvoice}

// Audit codes of holds.
const (
	HoldReasonHeld  = "legal_hold"            // an erasure kept a category under its legal minimum
	HoldReasonEnded = "hold_ended"            // the hold ended: the category is shredded
	PurposeHold     = broker.PurposeRetention // the purpose of hold entries
	invoiceDataCat  = "invoice"               // the policy data retention category of invoices
	invoiceColumn   = "sealed_invoice"
	ordersTable     = "orders"
	maxHoldsATurn   = 256
	holdSweepPeriod = time.Hour
)

// Hold is a data key category of an erased shopper kept until its legal
// minimum ends.
type Hold struct {
	Subject  string
	Category string // data key category (KeyInvoice)
	Basis    string // the policy data retention category
	HeldAt   time.Time
	Until    time.Time
}

// HoldStore keeps invoice records and holds.
type HoldStore interface {
	SetOrderInvoice(ctx context.Context, id string, sealed []byte) error
	OrderInvoice(ctx context.Context, id string) ([]byte, error)
	PutHold(ctx context.Context, h Hold) error
	TakeDueHolds(ctx context.Context, now time.Time, limit int) ([]Hold, error)
	DropInvoices(ctx context.Context, subject string) error
	ListHolds(ctx context.Context, limit int) ([]Hold, error)
	HoldOf(ctx context.Context, subject, category string) (Hold, error)
}

// CategoryShredder is a Sealer that can shred some of a shopper's data
// key categories and keep the others (seal.CategorySealer).
type CategoryShredder interface {
	ShredCategories(ctx context.Context, subject string, categories []string) error
}

// Invoice is the invoice record of a placed order: what the tax law asks
// to keep (CGST Act s.36), without the delivery address.
type Invoice struct {
	OrderID  string     `json:"order_id"`
	PlacedAt time.Time  `json:"placed_at"`
	Lines    []CartLine `json:"lines"`
	Total    int64      `json:"total_paise"`
	Payment  string     `json:"payment_status"`
}

// Holds applies the retention engine's holds: an erasure shreds the
// categories not under a hold and schedules the held ones (invoices, for
// their legal minimum); Sweep shreds them when the hold ends.
type Holds struct {
	Service *Service
	Store   HoldStore
	// Held maps a data key category to how long an erasure holds it (the
	// legal minimum of its policy data category); absent: not held.
	Held map[string]time.Duration
	// Bases names each policy data retention category's legal basis in
	// words (policies.Data.RetentionBases), for the officers' list.
	Bases map[string]string
	Now   func() time.Time // time.Now when nil; tests travel in time
}

// HeldCategory is a hold as officers see it: the shopper by audit
// pseudonym only, the legal basis in words.
type HeldCategory struct {
	Pseudonym string
	Category  string // data key category (KeyInvoice)
	Basis     string // the legal basis of the policy data category
	HeldAt    time.Time
	Until     time.Time
}

// List returns up to limit holds in force, soonest end first, as officers
// see them.
func (h *Holds) List(ctx context.Context, limit int) ([]HeldCategory, error) {
	list, err := h.Store.ListHolds(ctx, limit)
	if err != nil {
		return nil, err
	}
	pseudo := h.Service.Releaser.Pseudonyms()
	out := make([]HeldCategory, 0, len(list))
	for _, x := range list {
		basis := h.Bases[x.Basis]
		if basis == "" {
			basis = x.Basis
		}
		out = append(out, HeldCategory{Pseudonym: pseudo.Audit(x.Subject), Category: x.Category, Basis: basis,
			HeldAt: x.HeldAt, Until: x.Until})
	}
	return out, nil
}

func (h *Holds) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func invoiceBinding(orderID string) broker.Binding {
	return broker.Binding{Table: ordersTable, Column: invoiceColumn, RowID: orderID}
}

// SealInvoice seals and stores the invoice record of a placed order under
// the shopper's invoice key.
func (h *Holds) SealInvoice(ctx context.Context, o *Order, placedAt time.Time) error {
	b, _ := json.Marshal(Invoice{OrderID: o.ID, PlacedAt: placedAt.UTC(), Lines: o.Lines, Total: o.Total,
		Payment: o.PaymentStatus})
	sealed, err := h.Service.Sealer.Seal(ctx, o.Subject, invoiceBinding(o.ID), b)
	if err != nil {
		return err
	}
	return h.Store.SetOrderInvoice(ctx, o.ID, sealed)
}

// OpenInvoice opens an order's invoice record (held or not).
func (h *Holds) OpenInvoice(ctx context.Context, subject, orderID string) (Invoice, error) {
	sealed, err := h.Store.OrderInvoice(ctx, orderID)
	if err != nil {
		return Invoice{}, err
	}
	if sealed == nil {
		return Invoice{}, broker.ErrNotFound
	}
	b, err := h.Service.Sealer.Open(ctx, subject, invoiceBinding(orderID), sealed)
	if err != nil {
		return Invoice{}, err
	}
	var inv Invoice
	if err := json.Unmarshal(b, &inv); err != nil {
		return Invoice{}, broker.Errorf(broker.EInternal, "corrupt invoice record")
	}
	return inv, nil
}

// prepare runs in an erasure's transaction before its rows are blanked:
// every paid order without an invoice record (placed before keys were
// split) gets one, from its fulfilment record, so that what the law holds
// does not depend on the keys the erasure shreds. It reports whether the
// shopper has any invoice to hold.
func (h *Holds) prepare(ctx context.Context, subject string) (bool, error) {
	if _, held := h.Held[KeyInvoice]; !held {
		return false, nil
	}
	orders, err := h.Service.Orders.OrdersOfSubject(ctx, subject)
	if err != nil {
		return false, err
	}
	any := false
	for i := range orders {
		o := &orders[i]
		if o.Erased || o.Status == StatusPendingPayment || o.PaymentStatus != PaymentCaptured {
			continue
		}
		sealed, err := h.Store.OrderInvoice(ctx, o.ID)
		if err != nil {
			return false, err
		}
		if sealed == nil {
			if err := h.Service.OpenOrder(ctx, o); err != nil {
				continue // nothing readable to keep
			}
			if err := h.SealInvoice(ctx, &o.Order, o.CreatedAt); err != nil {
				return false, err
			}
		}
		any = true
	}
	return any, nil
}

// shred runs in an erasure's transaction after its rows are blanked: it
// shreds every category not under a hold and records the held ones. With
// nothing to hold, or a Sealer that cannot shred by category, every key
// goes.
func (h *Holds) shred(ctx context.Context, subject string, hasInvoices bool, actor broker.Party) error {
	s := h.Service
	cs, ok := s.Sealer.(CategoryShredder)
	life, held := h.Held[KeyInvoice]
	if !ok || !held || !hasInvoices {
		return s.Sealer.Shred(ctx, subject)
	}
	if err := cs.ShredCategories(ctx, subject, []string{KeyContact, KeyFulfilment}); err != nil {
		return err
	}
	now := h.now()
	if err := h.Store.PutHold(ctx, Hold{Subject: subject, Category: KeyInvoice, Basis: invoiceDataCat, HeldAt: now,
		Until: now.Add(life)}); err != nil {
		return err
	}
	return s.record(ctx, broker.Event{Time: now, Actor: actor.Actor(),
		Action: "hold", Purpose: PurposeHold, Subject: subject,
		Resource: "category:" + KeyInvoice, Outcome: audit.OutcomeDone, Reason: HoldReasonHeld})
}

// Sweep shreds every held category whose hold has ended, in batches, each
// in one transaction with its audit entry; several processes may sweep at
// once (a hold is taken by one of them). It returns how many it shredded.
func (h *Holds) Sweep(ctx context.Context) (int, error) {
	s := h.Service
	cs, ok := s.Sealer.(CategoryShredder)
	if !ok {
		return 0, nil
	}
	total := 0
	for {
		var n int
		var done []string
		err := s.Tx.InTx(ctx, func(ctx context.Context) error {
			now := h.now()
			due, err := h.Store.TakeDueHolds(ctx, now, maxHoldsATurn)
			if err != nil {
				return err
			}
			n, done = len(due), done[:0]
			for _, hd := range due {
				if err := cs.ShredCategories(ctx, hd.Subject, []string{hd.Category}); err != nil {
					return err
				}
				if hd.Category == KeyInvoice {
					if err := h.Store.DropInvoices(ctx, hd.Subject); err != nil {
						return err
					}
				}
				if err := s.record(ctx, broker.Event{Time: now, Actor: "system:retention", Action: "shred", Purpose: PurposeHold,
					Subject: hd.Subject, Resource: "category:" + hd.Category,
					Outcome: audit.OutcomeDone, Reason: HoldReasonEnded}); err != nil {
					return err
				}
				done = append(done, hd.Subject)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		for _, subject := range done {
			s.Sealer.Forget(subject)
		}
		total += n
		if n < maxHoldsATurn {
			return total, nil
		}
	}
}

// Run sweeps ended holds every interval until ctx ends.
func (h *Holds) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = holdSweepPeriod
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := h.Sweep(ctx); err != nil && ctx.Err() == nil {
			h.Service.Log.Warn("retention holds: sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PurposeLegalObligation is the one purpose a held record is released
// for (SPEC §10 Retention).
const PurposeLegalObligation = string(broker.PurposeLegalObligation)

// Reasons of a release of a held record.
const (
	HeldReasonApproved     = "officer_approved"
	HeldReasonWrongPurpose = "held_for_legal_obligation_only"
)

// ReleaseHeld releases the held invoice of an order of an erased shopper
// to an officer who approved it, for purpose legal_obligation only; any
// other purpose, or another party than an officer, is refused. Both are
// audited. It returns the invoice and the decision id.
func (h *Holds) ReleaseHeld(ctx context.Context, officer broker.Party, orderID, purpose string) (Invoice, string, error) {
	s := h.Service
	if !orderIDRe.MatchString(orderID) {
		return Invoice{}, "", broker.Errorf(broker.EInvalid, "order id must be an ord_… id")
	}
	if officer.Kind != broker.KindOfficer {
		return Invoice{}, "", broker.Errorf(broker.EForbidden, "only an officer may approve the release of a held record")
	}
	row, _, err := s.Orders.GetOrderWithSubject(ctx, orderID)
	if err != nil {
		return Invoice{}, "", err
	}
	if _, err := h.Store.HoldOf(ctx, row.Subject, KeyInvoice); err != nil {
		return Invoice{}, "", err
	}
	dec := broker.NewID("dec")
	e := broker.Event{Time: h.now(), DecisionID: dec, Actor: officer.Actor(), Action: "release held",
		Purpose: broker.Purpose(purpose), Subject: row.Subject, Resource: "order:" + orderID}
	if purpose != PurposeLegalObligation {
		e.Purpose, e.Withheld, e.Outcome, e.Reason = broker.PurposeInvalid, []string{"invoice"}, audit.OutcomeDenied, HeldReasonWrongPurpose
		if purpose == "" || len(purpose) <= 64 && FieldName(purpose) {
			e.Purpose = broker.Purpose(purpose)
		}
		if err := s.record(ctx, e); err != nil {
			return Invoice{}, "", broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
		}
		return Invoice{}, dec, broker.Errorf(broker.EDenied, "a held record is released only for purpose %s", PurposeLegalObligation)
	}
	inv, err := h.OpenInvoice(ctx, row.Subject, orderID)
	if err != nil {
		return Invoice{}, "", err
	}
	e.Released, e.Outcome, e.Reason = []string{"invoice"}, audit.OutcomeReleased, HeldReasonApproved
	if err := s.record(ctx, e); err != nil {
		return Invoice{}, "", broker.Wrap(broker.EUnavailable, err, "audit log unavailable; nothing was released")
	}
	return inv, dec, nil
}
