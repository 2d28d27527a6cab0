package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// PartnerRegistry is a change to a partner's legal registry entry and
// service area: nil fields are left as they are.
type PartnerRegistry struct {
	Role, Agreement, AgreementExpires, Jurisdiction, TransferBasis *string // "" clears
	Serves                                                         *[]string
	Location                                                       *[2]float64 // nil: unchanged
	ClearLocation                                                  bool
	RadiusKm                                                       *float64 // 0 clears
	SelfDelivery, AutoAccept                                       *bool
}

// sqlUpdateRegistry applies a PartnerRegistry: each $n pair is "change?"
// and the new value, so one statement serves every combination of flags.
const sqlUpdateRegistry = `UPDATE partners SET
	role = CASE WHEN $2 THEN NULLIF($3, '') ELSE role END,
	agreement_ref = CASE WHEN $4 THEN NULLIF($5, '') ELSE agreement_ref END,
	agreement_expires = CASE WHEN $6 THEN $7::date ELSE agreement_expires END,
	jurisdiction = CASE WHEN $8 THEN NULLIF($9, '') ELSE jurisdiction END,
	transfer_basis = CASE WHEN $10 THEN NULLIF($11, '') ELSE transfer_basis END,
	serves = CASE WHEN $12 THEN $13::text[] ELSE serves END,
	lat = CASE WHEN $14 THEN $15 WHEN $16 THEN NULL ELSE lat END,
	lon = CASE WHEN $14 THEN $17 WHEN $16 THEN NULL ELSE lon END,
	radius_km = CASE WHEN $18 THEN NULLIF($19::double precision, 0) ELSE radius_km END,
	self_delivery = CASE WHEN $20 THEN $21 ELSE self_delivery END,
	auto_accept = CASE WHEN $22 THEN $23 ELSE auto_accept END
WHERE id = $1`

// UpdatePartnerRegistry changes a partner's legal registry entry and
// service area; ENotFound when there is none, EInvalid when the result
// breaks a rule of the schema (a service area on a non-retailer, a bad
// country code).
func (db *DB) UpdatePartnerRegistry(ctx context.Context, id string, r PartnerRegistry) error {
	str := func(p *string) (bool, string) {
		if p == nil {
			return false, ""
		}
		return true, *p
	}
	roleSet, role := str(r.Role)
	agrSet, agr := str(r.Agreement)
	expSet, exp := str(r.AgreementExpires)
	// A date parameter rather than text cast to date in the statement: the
	// cast is STABLE, which Citus refuses inside CASE. '' clears it.
	var expArg any
	if exp != "" {
		expArg = exp
	}
	jurSet, jur := str(r.Jurisdiction)
	basisSet, basis := str(r.TransferBasis)
	var serves []string
	if r.Serves != nil {
		serves = *r.Serves
		if serves == nil {
			serves = []string{}
		}
	}
	var lat, lon float64
	if r.Location != nil {
		lat, lon = r.Location[0], r.Location[1]
	}
	var radius float64
	if r.RadiusKm != nil {
		radius = *r.RadiusKm
	}
	b := func(p *bool) (bool, bool) {
		if p == nil {
			return false, false
		}
		return true, *p
	}
	sdSet, sd := b(r.SelfDelivery)
	aaSet, aa := b(r.AutoAccept)
	tag, err := db.q(ctx).Exec(ctx, sqlUpdateRegistry, id, roleSet, role, agrSet, agr, expSet, expArg, jurSet, jur,
		basisSet, basis, r.Serves != nil, serves, r.Location != nil, lat, r.ClearLocation, lon,
		r.RadiusKm != nil, radius, sdSet, sd, aaSet, aa)
	if err != nil {
		return Translate(err) // a broken rule of the schema is EInvalid
	}
	if tag.RowsAffected() == 0 {
		return broker.ErrNotFound
	}
	return nil
}

// SetSubjectJurisdiction stores the shopper's country (from the phone's
// calling code), once; ENotFound when the shopper is gone.
func (db *DB) SetSubjectJurisdiction(ctx context.Context, id, country string) error {
	return db.exec1(ctx, `UPDATE subjects SET jurisdiction = $2 WHERE id = $1 AND erased_at IS NULL`, id, country)
}

// SetSubjectIdentityJurisdiction stores a new shopper's sealed identity
// and jurisdiction together: one statement on the ingest path.
func (db *DB) SetSubjectIdentityJurisdiction(ctx context.Context, id string, sealed []byte, country string) error {
	return db.exec1(ctx, `UPDATE subjects SET sealed_identity = $2, jurisdiction = $3 WHERE id = $1 AND erased_at IS NULL`,
		id, sealed, country)
}

var _ commerce.MarketStore = (*DB)(nil)

// RoutingStores returns the enabled retailers with a service area, in
// creation order (the partners_areas index).
func (db *DB) RoutingStores(ctx context.Context) ([]broker.Partner, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT `+partnerCols+` FROM partners
		WHERE kind = 'retailer' AND NOT disabled AND (serves <> '{}' OR radius_km IS NOT NULL) ORDER BY seq`)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.Partner, error) { return scanPartner(r) })
	return out, Translate(err)
}

// CreateOffers records an order's candidates, pending, in rank order.
func (db *DB) CreateOffers(ctx context.Context, orderID string, partners []string) error {
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
func (db *DB) OpenNextOffer(ctx context.Context, orderID string, ttl time.Duration) (commerce.Offer, bool, bool, error) {
	var off commerce.Offer
	var status, subject string
	// The lock names the shopper as well: on Citus orders are distributed by
	// the shopper, and Citus takes row locks only in a single-shard query.
	err := db.q(ctx).QueryRow(ctx, `SELECT subject_id FROM orders WHERE id = $1`, orderID).Scan(&subject)
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
func (db *DB) LockOffer(ctx context.Context, id, partner string) (commerce.Offer, error) {
	off, err := scanOffer(db.q(ctx).QueryRow(ctx, `SELECT `+offerCols+` FROM offers
		WHERE id = $1 AND partner_id = $2 FOR UPDATE`, id, partner))
	return off, Translate(err)
}

// DecideOffer records an offer's decision.
func (db *DB) DecideOffer(ctx context.Context, id, status string) error {
	return db.exec1(ctx, `UPDATE offers SET status = $2, decided_at = now() WHERE id = $1`, id, status)
}

// AssignOrder gives a routing order to the partner: a conditional UPDATE,
// so of two acceptances exactly one finds the order still routing.
func (db *DB) AssignOrder(ctx context.Context, orderID, partner string) (bool, error) {
	tag, err := db.q(ctx).Exec(ctx, `UPDATE orders SET status = 'pending_payment', retailer_id = $2, updated_at = now()
		WHERE id = $1 AND status = 'routing'`, orderID, partner)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// WithdrawOffers withdraws an order's undecided offers.
func (db *DB) WithdrawOffers(ctx context.Context, orderID string) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE offers SET status = 'withdrawn', decided_at = now()
		WHERE order_id = $1 AND status IN ('pending', 'open')`, orderID)
	return Translate(err)
}

// SetOrderStatusIf moves an order from one status to another, only from.
func (db *DB) SetOrderStatusIf(ctx context.Context, orderID, from, to string) (bool, error) {
	tag, err := db.q(ctx).Exec(ctx, `UPDATE orders SET status = $3, updated_at = now() WHERE id = $1 AND status = $2`,
		orderID, from, to)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// DueOffers locks open offers past their expiry, skipping those another
// sweeper holds.
func (db *DB) DueOffers(ctx context.Context, limit int) ([]commerce.Offer, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT `+offerCols+` FROM offers
		WHERE status = 'open' AND expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Offer, error) { return scanOffer(r) })
	return out, Translate(err)
}

// OpenOffersOf lists a partner's open, unexpired offers.
func (db *DB) OpenOffersOf(ctx context.Context, partner string) ([]commerce.Offer, error) {
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
func (db *DB) TakeStoreStock(ctx context.Context, partner string, qty map[string]int) (bool, error) {
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
func (db *DB) SetStoreStock(ctx context.Context, partner string, stock map[string]int) error {
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

// OfferRecord is an offer as the dashboard lists it.
type OfferRecord struct {
	OfferID, OrderID, StoreID, Status string
	Rank                              int
	CreatedAt                         time.Time
	DecidedAt                         *time.Time
}

// RecentOffers lists the offers made since a time, newest first (at most
// 500), for the dashboard: ids, store, status and times only.
func (db *DB) RecentOffers(ctx context.Context, since time.Time) ([]OfferRecord, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT id, order_id, partner_id, status, rank, created_at, decided_at FROM offers
		WHERE created_at >= $1 ORDER BY created_at DESC, rank LIMIT 500`, since)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OfferRecord, error) {
		var o OfferRecord
		err := r.Scan(&o.OfferID, &o.OrderID, &o.StoreID, &o.Status, &o.Rank, &o.CreatedAt, &o.DecidedAt)
		return o, err
	})
	return out, Translate(err)
}
