package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/commerce"
)

// Holds keeps the held categories of erased shoppers (their invoices)
// until their legal minimum ends.
type Holds struct{ *base }

var _ commerce.HoldStore = (*Holds)(nil)

// SetOrderInvoice stores an order's sealed invoice record.
func (db *Holds) SetOrderInvoice(ctx context.Context, id string, sealed []byte) error {
	return db.orderExec1(ctx, `UPDATE orders SET sealed_invoice = $2 WHERE id = $1`, id, sealed)
}

// OrderInvoice returns an order's sealed invoice record (nil when none).
func (db *Holds) OrderInvoice(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := db.q(ctx).QueryRow(ctx, `SELECT sealed_invoice FROM orders WHERE id = $1`, id).Scan(&b)
	return b, Translate(err)
}

// PutHold records that a shopper's category is held until until.
func (db *Holds) PutHold(ctx context.Context, h commerce.Hold) error {
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO subject_holds (subject_id, category, basis, held_at, hold_until)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subject_id, category) DO UPDATE SET hold_until = EXCLUDED.hold_until`,
		h.Subject, h.Category, h.Basis, h.HeldAt, h.Until)
	return Translate(err)
}

// TakeDueHolds removes and returns up to limit holds ended before now.
// Rows another transaction is taking are skipped, so several sweepers
// never shred the same hold twice.
func (db *Holds) TakeDueHolds(ctx context.Context, now time.Time, limit int) ([]commerce.Hold, error) {
	rows, err := db.q(ctx).Query(ctx, `DELETE FROM subject_holds WHERE (subject_id, category) IN (
		SELECT subject_id, category FROM subject_holds WHERE hold_until < $1 ORDER BY hold_until LIMIT $2
		FOR UPDATE SKIP LOCKED) RETURNING subject_id, category, basis, held_at, hold_until`, now, limit)
	return collectHolds(rows, err)
}

// DropInvoices blanks the invoice records of a shopper whose hold ended.
func (db *Holds) DropInvoices(ctx context.Context, subject string) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE orders SET sealed_invoice = NULL WHERE subject_id = $1`, subject)
	return Translate(err)
}

// ListHolds returns the holds in force, soonest end first (the dashboard).
func (db *Holds) ListHolds(ctx context.Context, limit int) ([]commerce.Hold, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT subject_id, category, basis, held_at, hold_until FROM subject_holds
		ORDER BY hold_until LIMIT $1`, limit)
	return collectHolds(rows, err)
}

// HoldOf returns the hold of a shopper's category, or ENotFound.
func (db *Holds) HoldOf(ctx context.Context, subject, category string) (commerce.Hold, error) {
	var h commerce.Hold
	err := db.q(ctx).QueryRow(ctx, `SELECT subject_id, category, basis, held_at, hold_until FROM subject_holds
		WHERE subject_id = $1 AND category = $2`, subject, category).Scan(&h.Subject, &h.Category, &h.Basis, &h.HeldAt, &h.Until)
	return h, Translate(err)
}

// collectHolds reads holds as (subject_id, category, basis, held_at,
// hold_until) rows.
func collectHolds(rows pgx.Rows, err error) ([]commerce.Hold, error) {
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Hold, error) {
		var h commerce.Hold
		err := r.Scan(&h.Subject, &h.Category, &h.Basis, &h.HeldAt, &h.Until)
		return h, err
	})
	return out, Translate(err)
}
