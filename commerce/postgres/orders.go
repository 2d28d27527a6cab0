package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Orders keeps the shop's orders. The statements on one order by its id
// are routed to its shopper's shard on Citus (see routeOrder, on base,
// which the stores that touch orders share).
type Orders struct{ *base }

var _ commerce.OrderStore = (*Orders)(nil)

const orderCols = `id, subject_id, store, coalesce(retailer_id, ''), status, payment_status, reference_id,
	subtotal, tax, shipping, total, created_at, updated_at, sealed, erased_at IS NOT NULL, coalesce(logistics_id, '')`

func scanOrder(row pgx.Row) (commerce.OrderRow, error) {
	var o commerce.OrderRow
	err := row.Scan(&o.ID, &o.Subject, &o.Store, &o.RetailerID, &o.Status, &o.PaymentStatus, &o.ReferenceID,
		&o.Subtotal, &o.Tax, &o.Shipping, &o.Total, &o.CreatedAt, &o.UpdatedAt, &o.Sealed, &o.Erased, &o.LogisticsID)
	return o, err
}

// CreateOrder stores a new order.
func (db *Orders) CreateOrder(ctx context.Context, o commerce.OrderRow) error {
	q := db.q(ctx)
	_, err := q.Exec(ctx, `INSERT INTO orders (id, subject_id, store, retailer_id, status, payment_status,
		reference_id, subtotal, tax, shipping, total, created_at, sealed)
		VALUES ($1, $2, $3, nullif($4, ''), $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		o.ID, o.Subject, o.Store, o.RetailerID, o.Status, o.PaymentStatus, o.ReferenceID, o.Subtotal, o.Tax,
		o.Shipping, o.Total, o.CreatedAt, o.Sealed)
	if err == nil {
		_, err = q.Exec(ctx, sqlIndexOrder, o.ID, o.Subject)
	}
	return Translate(err)
}

// The order index (migration 0023): an order's shopper by the order's id.
const (
	sqlIndexOrder = `INSERT INTO order_index (order_id, subject_id) VALUES ($1, $2)`
	sqlOrderIndex = `SELECT subject_id FROM order_index WHERE order_id = $1`
)

// routeOrder prepares a statement on one order, named by $1, whose SQL
// ends with its WHERE clause (alias is the orders table's alias there, or
// ""). On Citus the shopper is looked up in the order index first and
// added to the clause, so that the statement runs on that shopper's shard
// instead of on every shard; an order the index does not know is
// broker.ErrNotFound. On one PostgreSQL the statement is left as written.
func (db *base) routeOrder(ctx context.Context, alias, sql string, args []any) (string, []any, error) {
	if !db.spread(ctx) {
		return sql, args, nil
	}
	subject, err := db.orderShopper(ctx, args[0].(string))
	if err != nil {
		return sql, args, err
	}
	if alias != "" {
		alias += "."
	}
	return sql + fmt.Sprintf(" AND %ssubject_id = $%d", alias, len(args)+1), append(args, subject), nil
}

// orderExec runs a statement on one order (see routeOrder); an order the
// order index does not know touches no row, as the statement would.
func (db *base) orderExec(ctx context.Context, alias, sql string, args ...any) (pgconn.CommandTag, error) {
	sql, args, err := db.routeOrder(ctx, alias, sql, args)
	if broker.IsNotFound(err) {
		return pgconn.CommandTag{}, nil
	}
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := db.q(ctx).Exec(ctx, sql, args...)
	return tag, Translate(err)
}

// orderExec1 is orderExec for a statement that must change the order:
// broker.ErrNotFound when it changed nothing.
func (db *base) orderExec1(ctx context.Context, sql string, args ...any) error {
	tag, err := db.orderExec(ctx, "", sql, args...)
	if err == nil && tag.RowsAffected() == 0 {
		err = broker.ErrNotFound
	}
	return err
}

// orderShopper is the shopper of order id from the order index, for a
// statement that then names both and stays on that shopper's shard.
func (db *base) orderShopper(ctx context.Context, id string) (string, error) {
	var subject string
	err := db.q(ctx).QueryRow(ctx, sqlOrderIndex, id).Scan(&subject)
	return subject, Translate(err)
}

// GetOrder finds an order by id.
func (db *Orders) GetOrder(ctx context.Context, id string) (commerce.OrderRow, error) {
	sql, args, err := db.routeOrder(ctx, "", `SELECT `+orderCols+` FROM orders WHERE id = $1`, []any{id})
	if err != nil {
		return commerce.OrderRow{}, err
	}
	o, err := scanOrder(db.q(ctx).QueryRow(ctx, sql, args...))
	return o, Translate(err)
}

// OrderByReference finds an order by payment reference.
func (db *Orders) OrderByReference(ctx context.Context, ref string) (commerce.OrderRow, error) {
	o, err := scanOrder(db.q(ctx).QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE reference_id = $1`, ref))
	return o, Translate(err)
}

// UpdateOrderStatus sets an order's status and payment status (and its
// sealed part when given).
func (db *Orders) UpdateOrderStatus(ctx context.Context, id, status, payment string, sealed []byte) error {
	return db.orderExec1(ctx, `UPDATE orders SET status = $2, payment_status = $3, sealed = coalesce($4, sealed),
		updated_at = now(), placed_at = GREATEST(placed_at, now() + CASE WHEN $2 = 'placed' THEN interval '0' END)
		WHERE id = $1 AND erased_at IS NULL`, id, status, payment, sealed)
}

// SetOrderRetailer records which retailer receives an order.
func (db *Orders) SetOrderRetailer(ctx context.Context, id, retailer string) error {
	return db.orderExec1(ctx, `UPDATE orders SET retailer_id = $2 WHERE id = $1`, id, retailer)
}

// SetOrderLogistics dispatches an order to a logistics partner.
func (db *Orders) SetOrderLogistics(ctx context.Context, id, logistics string) error {
	return db.orderExec1(ctx, `UPDATE orders SET logistics_id = $2, updated_at = now() WHERE id = $1 AND erased_at IS NULL`,
		id, logistics)
}

// BindDefaultCourier dispatches an order not yet dispatched to its
// retailer's default courier, when the retailer has one that is an enabled
// logistics partner; otherwise it changes nothing.
func (db *Orders) BindDefaultCourier(ctx context.Context, id string) error {
	_, err := db.orderExec(ctx, "o", `UPDATE orders o SET logistics_id = r.default_courier
		FROM partners r JOIN partners c ON c.id = r.default_courier
		WHERE o.id = $1 AND o.logistics_id IS NULL AND r.id = o.retailer_id
		  AND c.kind = 'logistics' AND NOT c.disabled`, id)
	return err
}

// ListOrders lists a retailer's orders, newest first, with a cursor.
func (db *Orders) ListOrders(ctx context.Context, f commerce.OrderFilter) ([]commerce.OrderRow, string, error) {
	if f.Limit <= 0 || f.Limit > 100 {
		f.Limit = 50
	}
	args := []any{f.Retailer}
	where := []string{"retailer_id = $1", "erased_at IS NULL", "status <> 'pending_payment'"}
	if f.Status != "" {
		args = append(args, f.Status)
		where = append(where, "status = $"+itoa(len(args)))
	}
	if !f.Since.IsZero() {
		args = append(args, f.Since)
		where = append(where, "created_at >= $"+itoa(len(args)))
	}
	if f.Cursor != "" {
		t, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, t, id)
		where = append(where, "(created_at, id) < ($"+itoa(len(args)-1)+", $"+itoa(len(args))+")")
	}
	args = append(args, f.Limit+1)
	sql := `SELECT ` + orderCols + ` FROM orders WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY created_at DESC, id DESC LIMIT $` + itoa(len(args))
	rows, err := db.q(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, "", Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.OrderRow, error) { return scanOrder(r) })
	if err != nil {
		return nil, "", Translate(err)
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[len(out)-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	return out, next, nil
}

// OrdersOfSubject lists a shopper's orders.
func (db *Orders) OrdersOfSubject(ctx context.Context, subject string) ([]commerce.OrderRow, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT `+orderCols+` FROM orders WHERE subject_id = $1 ORDER BY created_at`, subject)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.OrderRow, error) { return scanOrder(r) })
	return out, Translate(err)
}

func itoa(i int) string { return strconv.Itoa(i) }

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(t.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	bad := broker.Errorf(broker.EInvalid, "invalid cursor")
	if err != nil || len(b) > 200 {
		return time.Time{}, "", bad
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return time.Time{}, "", bad
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", bad
	}
	return t, id, nil
}

// sqlOrderWithSubject reads an order and its shopper; the caller adds the
// WHERE clause.
const sqlOrderWithSubject = `SELECT o.id, o.subject_id, o.store, coalesce(o.retailer_id, ''), o.status,
		o.payment_status, o.reference_id, o.subtotal, o.tax, o.shipping, o.total, o.created_at, o.updated_at, o.sealed,
		o.erased_at IS NOT NULL, s.id, s.consent_notice, s.consent_marketing, s.consent_analytics, s.erased_at IS NOT NULL,
		coalesce(o.logistics_id, ''), coalesce(s.consent_child, false), coalesce(s.restricted_at IS NOT NULL, false), coalesce(s.jurisdiction, '')
		FROM orders o LEFT JOIN subjects s ON s.id = o.subject_id`

// GetOrderWithSubject reads an order and its shopper in one round trip (the
// partner read path needs both: the order, and the consent policy sees).
func (db *Orders) GetOrderWithSubject(ctx context.Context, id string) (commerce.OrderRow, commerce.SubjectRow, error) {
	var o commerce.OrderRow
	var sub commerce.SubjectRow
	var subID *string
	// On Citus the shopper comes from the order index first, so that both
	// statements are router queries; on one PostgreSQL the order's primary
	// key finds it in one.
	sql, args, err := db.routeOrder(ctx, "o", sqlOrderWithSubject+` WHERE o.id = $1`, []any{id})
	if err != nil {
		return o, sub, err
	}
	err = db.q(ctx).QueryRow(ctx, sql, args...).Scan(
		&o.ID, &o.Subject, &o.Store, &o.RetailerID, &o.Status, &o.PaymentStatus, &o.ReferenceID, &o.Subtotal, &o.Tax,
		&o.Shipping, &o.Total, &o.CreatedAt, &o.UpdatedAt, &o.Sealed, &o.Erased, &subID, &sub.Consent.Notice,
		&sub.Consent.Marketing, &sub.Consent.Analytics, &sub.Erased, &o.LogisticsID, &sub.Consent.Child, &sub.Restricted, &sub.Jurisdiction)
	if err != nil {
		return o, sub, Translate(err)
	}
	if subID == nil {
		sub.Erased = true // no subject row: treat as gone
	} else {
		sub.ID = *subID
	}
	return o, sub, nil
}
