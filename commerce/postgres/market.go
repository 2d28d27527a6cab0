package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Market is the marketplace's store: the offers of orders to stores, the
// stores' own stock and the routing stores (read from the partners).
type Market struct{ *base }

var _ commerce.MarketStore = (*Market)(nil)

// CreateOffers records an order's candidates, pending, in rank order.
func (db *Market) CreateOffers(ctx context.Context, orderID string, partners []string) error {
	ids := make([]string, len(partners))
	for i := range partners {
		ids[i] = broker.NewID("off")
	}
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO offers (id, order_id, partner_id, rank)
		SELECT id, $2, partner, ord - 1 FROM unnest($1::text[], $3::text[]) WITH ORDINALITY AS t(id, partner, ord)`,
		ids, orderID, partners)
	return Translate(err)
}

const offerCols = `id, order_id, partner_id, status, rank, coalesce(expires_at, 'epoch')`

func scanOffer(row pgx.Row) (commerce.Offer, error) {
	var o commerce.Offer
	err := row.Scan(&o.ID, &o.OrderID, &o.PartnerID, &o.Status, &o.Rank, &o.ExpiresAt)
	return o, err
}

// OpenNextOffer locks the order row (so that two brokers advancing the
// same order take turns) and opens its best pending offer, unless one is
// open already or the order stopped routing.
func (db *Market) OpenNextOffer(ctx context.Context, orderID string, ttl time.Duration) (commerce.Offer, bool, bool, error) {
	var off commerce.Offer
	var status, subject string
	// The lock names the shopper as well: on Citus orders are distributed by
	// the shopper, and Citus takes row locks only in a single-shard query.
	subject, err := db.orderShopper(ctx, orderID)
	if err == nil {
		err = db.q(ctx).QueryRow(ctx, `SELECT status FROM orders WHERE subject_id = $2 AND id = $1 FOR UPDATE`,
			orderID, subject).Scan(&status)
	}
	if err != nil {
		return off, false, false, Translate(err)
	}
	if status != commerce.StatusRouting {
		return off, false, true, nil
	}
	var open bool
	if err := db.q(ctx).QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM offers WHERE order_id = $1 AND status = 'open')`,
		orderID).Scan(&open); err != nil {
		return off, false, false, Translate(err)
	}
	if open {
		return off, false, true, nil
	}
	off, err = scanOffer(db.q(ctx).QueryRow(ctx, `UPDATE offers SET status = 'open', offered_at = now(),
		expires_at = now() + $2::interval
		WHERE id = (SELECT id FROM offers WHERE order_id = $1 AND status = 'pending' ORDER BY rank LIMIT 1)
		RETURNING `+offerCols, orderID, ttl))
	if errors.Is(err, pgx.ErrNoRows) {
		return off, false, false, nil
	}
	if err != nil {
		return off, false, false, Translate(err)
	}
	return off, true, true, nil
}

// LockOffer reads and locks the partner's offer; ENotFound for another
// partner's.
func (db *Market) LockOffer(ctx context.Context, id, partner string) (commerce.Offer, error) {
	off, err := scanOffer(db.q(ctx).QueryRow(ctx, `SELECT `+offerCols+` FROM offers
		WHERE id = $1 AND partner_id = $2 FOR UPDATE`, id, partner))
	return off, Translate(err)
}

// DecideOffer records an offer's decision.
func (db *Market) DecideOffer(ctx context.Context, id, status string) error {
	return db.exec1(ctx, `UPDATE offers SET status = $2, decided_at = now() WHERE id = $1`, id, status)
}

// AssignOrder gives a routing order to the partner: a conditional UPDATE,
// so of two acceptances exactly one finds the order still routing.
func (db *Market) AssignOrder(ctx context.Context, orderID, partner string) (bool, error) {
	tag, err := db.orderExec(ctx, "", `UPDATE orders SET status = 'pending_payment', retailer_id = $2, updated_at = now()
		WHERE id = $1 AND status = 'routing'`, orderID, partner)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// WithdrawOffers withdraws an order's undecided offers.
func (db *Market) WithdrawOffers(ctx context.Context, orderID string) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE offers SET status = 'withdrawn', decided_at = now()
		WHERE order_id = $1 AND status IN ('pending', 'open')`, orderID)
	return Translate(err)
}

// SetOrderStatusIf moves an order from one status to another, only from.
func (db *Market) SetOrderStatusIf(ctx context.Context, orderID, from, to string) (bool, error) {
	tag, err := db.orderExec(ctx, "", `UPDATE orders SET status = $3, updated_at = now() WHERE id = $1 AND status = $2`,
		orderID, from, to)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// DueOffers locks open offers past their expiry, skipping those another
// sweeper holds.
func (db *Market) DueOffers(ctx context.Context, limit int) ([]commerce.Offer, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT `+offerCols+` FROM offers
		WHERE status = 'open' AND expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Offer, error) { return scanOffer(r) })
	return out, Translate(err)
}

// OpenOffersOf lists a partner's open, unexpired offers.
func (db *Market) OpenOffersOf(ctx context.Context, partner string) ([]commerce.Offer, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT `+offerCols+` FROM offers
		WHERE partner_id = $1 AND status = 'open' AND expires_at > now() ORDER BY expires_at LIMIT 100`, partner)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Offer, error) { return scanOffer(r) })
	return out, Translate(err)
}

// TakeStoreStock decrements the store's stock for the cart, all or
// nothing: every line must have a row with enough stock.
func (db *Market) TakeStoreStock(ctx context.Context, partner string, qty map[string]int) (bool, error) {
	skus := make([]string, 0, len(qty))
	ns := make([]int32, 0, len(qty))
	for sku, n := range qty {
		skus, ns = append(skus, sku), append(ns, int32(n))
	}
	// Lock the store's rows first, then check and decrement: all or
	// nothing, even against a concurrent taker of the same rows.
	var covered int
	err := db.q(ctx).QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM store_stock s
		JOIN unnest($2::text[], $3::int[]) AS w(sku, n) ON s.sku = w.sku
		WHERE s.partner_id = $1 AND s.stock >= w.n ORDER BY s.sku FOR UPDATE OF s) x`, partner, skus, ns).Scan(&covered)
	if err != nil {
		return false, Translate(err)
	}
	if len(qty) == 0 || covered != len(qty) {
		return false, nil
	}
	_, err = db.q(ctx).Exec(ctx, `UPDATE store_stock s SET stock = s.stock - w.n, updated_at = now()
		FROM unnest($2::text[], $3::int[]) AS w(sku, n) WHERE s.partner_id = $1 AND s.sku = w.sku`, partner, skus, ns)
	return err == nil, Translate(err)
}

// SetStoreStock sets a store's stock of the given SKUs (seeding, tests).
func (db *Market) SetStoreStock(ctx context.Context, partner string, stock map[string]int) error {
	skus := make([]string, 0, len(stock))
	ns := make([]int32, 0, len(stock))
	for sku, n := range stock {
		skus, ns = append(skus, sku), append(ns, int32(n))
	}
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO store_stock (partner_id, sku, stock)
		SELECT $1, sku, n FROM unnest($2::text[], $3::int[]) AS t(sku, n)
		ON CONFLICT (partner_id, sku) DO UPDATE SET stock = excluded.stock, updated_at = excluded.updated_at`, partner, skus, ns)
	return Translate(err)
}

// RecentOffers lists the offers made since a time, newest first (at most
// 500), for the dashboard: ids, store, status and times only.
func (db *Market) RecentOffers(ctx context.Context, since time.Time) ([]commerce.OfferRecord, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT id, order_id, partner_id, status, rank, created_at, decided_at FROM offers
		WHERE created_at >= $1 ORDER BY created_at DESC, rank LIMIT 500`, since)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.OfferRecord, error) {
		var o commerce.OfferRecord
		err := r.Scan(&o.OfferID, &o.OrderID, &o.StoreID, &o.Status, &o.Rank, &o.CreatedAt, &o.DecidedAt)
		return o, err
	})
	return out, Translate(err)
}
