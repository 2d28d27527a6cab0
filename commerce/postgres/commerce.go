package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

const subjectCols = `id, sealed_identity, consent_notice, consent_marketing, consent_analytics,
	coalesce(last_inbound_at, 'epoch'), last_interaction_at, created_at, erased_at IS NOT NULL,
	consent_child, lang, notice_sha256, restricted_at IS NOT NULL, coalesce(jurisdiction, '')`

func scanSubject(row pgx.Row) (commerce.SubjectRow, error) {
	var s commerce.SubjectRow
	err := row.Scan(&s.ID, &s.SealedIdentity, &s.Consent.Notice, &s.Consent.Marketing, &s.Consent.Analytics,
		&s.LastInbound, &s.LastInteraction, &s.CreatedAt, &s.Erased, &s.Consent.Child, &s.Lang, &s.NoticeSHA, &s.Restricted, &s.Jurisdiction)
	return s, Translate(err)
}

const (
	sqlSubjectByIndex = `SELECT ` + subjectCols + ` FROM subjects WHERE id =
		(SELECT subject_id FROM subject_identifiers WHERE blind_index = $1)`
	sqlSubjectByID = `SELECT ` + subjectCols + ` FROM subjects WHERE id = $1`
	// sqlCreateSubject inserts a shopper and all its identifiers in one
	// statement, or nothing when one of them is already taken (a racing
	// insert of the same identifier fails the statement: unique_violation).
	sqlCreateSubject = `WITH ids AS (SELECT * FROM unnest($2::bytea[], $3::text[]) AS t(ix, kind)),
		s AS (INSERT INTO subjects (id) SELECT $1
			WHERE NOT EXISTS (SELECT 1 FROM subject_identifiers WHERE blind_index IN (SELECT ix FROM ids))
			RETURNING ` + subjectCols + `),
		i AS (INSERT INTO subject_identifiers (blind_index, subject_id, kind) SELECT ids.ix, s.id, ids.kind FROM ids, s)
		SELECT * FROM s`
	// sqlCreateSealedSubject is sqlCreateSubject with the rest of what a
	// new shopper starts with, the sealed identity, the jurisdiction and the
	// wrapped data key: a new shopper's first message costs one statement
	// and one commit. subject_keys has no foreign key to subjects (keys
	// outlive nothing: erasure deletes them), so the order of the CTEs is
	// free; all or nothing is written.
	sqlCreateSealedSubject = `WITH ids AS (SELECT * FROM unnest($2::bytea[], $3::text[]) AS t(ix, kind)),
		s AS (INSERT INTO subjects (id, sealed_identity, jurisdiction) SELECT $1, $4, NULLIF($5, '')
			WHERE NOT EXISTS (SELECT 1 FROM subject_identifiers WHERE blind_index IN (SELECT ix FROM ids))
			RETURNING id),
		i AS (INSERT INTO subject_identifiers (blind_index, subject_id, kind) SELECT ids.ix, s.id, ids.kind FROM ids, s),
		k AS (INSERT INTO subject_keys (subject_id, key_id, wrapped) SELECT s.id, $6, $7 FROM s)
		SELECT count(*) FROM s`
	sqlSubjectsByIndexes = `SELECT blind_index, subject_id FROM subject_identifiers WHERE blind_index = ANY($1)`
	sqlLinkIdentifiers   = `INSERT INTO subject_identifiers (blind_index, subject_id, kind)
		SELECT t.ix, $1, t.kind FROM unnest($2::bytea[], $3::text[]) AS t(ix, kind)
		WHERE EXISTS (SELECT 1 FROM subjects WHERE id = $1 AND erased_at IS NULL)
		ON CONFLICT (blind_index) DO NOTHING`
	sqlUnlinkIdentifiers = `DELETE FROM subject_identifiers WHERE subject_id = $1 AND blind_index = ANY($2)`
)

// EnsureSubject returns the shopper with the blind index, creating it
// with that one identifier (of kind unknown).
func (db *Store) EnsureSubject(ctx context.Context, index []byte, newID string) (commerce.SubjectRow, bool, error) {
	for attempt := 0; ; attempt++ {
		s, err := db.SubjectByIndex(ctx, index)
		if !broker.IsNotFound(err) {
			return s, false, err
		}
		s, err = db.CreateSubject(ctx, newID, []commerce.IdentifierIndex{{Kind: "unknown", Index: index}})
		if broker.ErrorCode(err) == broker.EConflict && attempt < 2 {
			continue
		}
		return s, err == nil, err
	}
}

// CreateSubject creates a shopper with all its identifiers; EConflict
// when one of them already belongs to a shopper (nothing is written).
func (db *Store) CreateSubject(ctx context.Context, id string, ids []commerce.IdentifierIndex) (commerce.SubjectRow, error) {
	ix, kinds := identifierColumns(ids)
	s, err := scanSubject(db.Q(ctx).QueryRow(ctx, sqlCreateSubject, id, ix, kinds))
	if broker.IsNotFound(err) {
		return s, broker.Errorf(broker.EConflict, "identifier already indexed")
	}
	return s, err
}

// CreateSealedSubject creates a shopper with its identifiers, wrapped data
// key, sealed identity and jurisdiction in one statement; EConflict when one
// of the identifiers already belongs to a shopper (nothing is written).
func (db *Store) CreateSealedSubject(ctx context.Context, n commerce.NewSubject) error {
	if n.Key.Subject != n.ID || n.Key.KeyID == "" || len(n.Key.Wrapped) == 0 {
		return broker.Errorf(broker.EInternal, "a new shopper's key must be theirs and wrapped")
	}
	ix, kinds := identifierColumns(n.Identifiers)
	var created int
	if err := db.Q(ctx).QueryRow(ctx, sqlCreateSealedSubject, n.ID, ix, kinds, n.SealedIdentity, n.Jurisdiction,
		n.Key.KeyID, n.Key.Wrapped).Scan(&created); err != nil {
		return Translate(err)
	}
	if created == 0 {
		return broker.Errorf(broker.EConflict, "identifier already indexed")
	}
	return nil
}

// SubjectsByIndexes maps each known blind index (as a string) to the
// shopper it points to, with one query.
func (db *Store) SubjectsByIndexes(ctx context.Context, indexes [][]byte) (map[string]string, error) {
	rows, err := db.Q(ctx).Query(ctx, sqlSubjectsByIndexes, indexes)
	if err != nil {
		return nil, Translate(err)
	}
	out := make(map[string]string, len(indexes))
	var ix []byte
	var sub string
	_, err = pgx.ForEachRow(rows, []any{&ix, &sub}, func() error {
		out[string(ix)] = sub
		return nil
	})
	return out, Translate(err)
}

// LinkIdentifiers points the identifiers to the shopper; those already
// pointing anywhere are left as they are. It returns how many it added.
func (db *Store) LinkIdentifiers(ctx context.Context, subject string, ids []commerce.IdentifierIndex) (int, error) {
	ix, kinds := identifierColumns(ids)
	tag, err := db.Q(ctx).Exec(ctx, sqlLinkIdentifiers, subject, ix, kinds)
	if err != nil {
		return 0, Translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// UnlinkIdentifiers removes those of the indexes that point to subject.
func (db *Store) UnlinkIdentifiers(ctx context.Context, subject string, indexes [][]byte) (int, error) {
	tag, err := db.Q(ctx).Exec(ctx, sqlUnlinkIdentifiers, subject, indexes)
	if err != nil {
		return 0, Translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// CountIdentifiers returns how many identifiers point to the shopper.
func (db *Store) CountIdentifiers(ctx context.Context, subject string) (int, error) {
	var n int
	err := db.Q(ctx).QueryRow(ctx, `SELECT count(*) FROM subject_identifiers WHERE subject_id = $1`, subject).Scan(&n)
	return n, Translate(err)
}

func identifierColumns(ids []commerce.IdentifierIndex) ([][]byte, []string) {
	ix, kinds := make([][]byte, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		ix[i], kinds[i] = id.Index, id.Kind
	}
	return ix, kinds
}

// SubjectByIndex finds a shopper by blind index.
func (db *Store) SubjectByIndex(ctx context.Context, index []byte) (commerce.SubjectRow, error) {
	return scanSubject(db.Q(ctx).QueryRow(ctx, sqlSubjectByIndex, index))
}

// GetSubject finds a shopper by id.
func (db *Store) GetSubject(ctx context.Context, id string) (commerce.SubjectRow, error) {
	return scanSubject(db.Q(ctx).QueryRow(ctx, sqlSubjectByID, id))
}

// SetSubjectIdentity stores the shopper's sealed identity.
func (db *Store) SetSubjectIdentity(ctx context.Context, id string, sealed []byte) error {
	return db.Exec1(ctx, `UPDATE subjects SET sealed_identity = $2 WHERE id = $1 AND erased_at IS NULL`, id, sealed)
}

// SetSubjectJurisdiction stores the shopper's country (from the phone's
// calling code), once; ENotFound when the shopper is gone.
func (db *Store) SetSubjectJurisdiction(ctx context.Context, id, country string) error {
	return db.Exec1(ctx, `UPDATE subjects SET jurisdiction = $2 WHERE id = $1 AND erased_at IS NULL`, id, country)
}

// SetSubjectIdentityJurisdiction stores a new shopper's sealed identity
// and jurisdiction together: one statement on the ingest path.
func (db *Store) SetSubjectIdentityJurisdiction(ctx context.Context, id string, sealed []byte, country string) error {
	return db.Exec1(ctx, `UPDATE subjects SET sealed_identity = $2, jurisdiction = $3 WHERE id = $1 AND erased_at IS NULL`,
		id, sealed, country)
}

// SetRestricted pauses (on) or resumes (off) the processing of the
// shopper's data (GDPR Art. 18).
func (db *Store) SetRestricted(ctx context.Context, id string, on bool) error {
	// COALESCE keeps the first restriction's time; the CASE makes it NULL
	// when resuming. The time is a parameter, not now(): Citus refuses a
	// STABLE function beside a column reference in an UPDATE.
	return db.Exec1(ctx, `UPDATE subjects SET restricted_at = CASE WHEN $2 THEN coalesce(restricted_at, $3::timestamptz) END
		WHERE id = $1 AND erased_at IS NULL`, id, on, time.Now())
}

// SetConsent stores the shopper's consent state.
func (db *Store) SetConsent(ctx context.Context, id string, c broker.Consent) error {
	return db.Exec1(ctx, `UPDATE subjects SET consent_notice = $2, consent_marketing = $3, consent_analytics = $4,
		consent_updated_at = now() WHERE id = $1 AND erased_at IS NULL`, id, c.Notice, c.Marketing, c.Analytics)
}

const sqlInsertInbox = `INSERT INTO inbox (dedup_key, subject_id, kind, store, sealed)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
	ON CONFLICT (subject_id, dedup_key) DO NOTHING`

// InsertInbox stores inbound events, skipping known dedup keys.
//
// Outside a transaction the rows are group-committed with those of
// concurrent callers; either way they are durable when it returns.
func (db *Store) InsertInbox(ctx context.Context, items []commerce.InboxItem) (int, error) {
	if _, ok := bpg.TxFrom(ctx); !ok {
		return db.insertInboxGrouped(ctx, items)
	}
	tag, err := db.Q(ctx).Exec(ctx, sqlInsertInbox, inboxColumns(items)...)
	if err != nil {
		return 0, Translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// PendingSubjects lists shoppers with unprocessed events, oldest first.
func (db *Store) PendingSubjects(ctx context.Context, limit int) ([]string, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT subject_id FROM inbox WHERE processed_at IS NULL
		GROUP BY subject_id ORDER BY min(id) LIMIT $1`, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, Translate(err)
}

// PendingInbox returns a shopper's unprocessed events in arrival order.
func (db *Store) PendingInbox(ctx context.Context, subject string, limit int) ([]commerce.InboxItem, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT id, dedup_key, subject_id, kind, store, sealed, received_at, attempts
		FROM inbox WHERE subject_id = $1 AND processed_at IS NULL ORDER BY id LIMIT $2`, subject, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.InboxItem, error) {
		var it commerce.InboxItem
		err := r.Scan(&it.ID, &it.DedupKey, &it.Subject, &it.Kind, &it.Store, &it.Sealed, &it.Received, &it.Attempts)
		return it, err
	})
	return out, Translate(err)
}

// MarkInbox marks an event processed; errText, when set, records why it
// could not be (it is then not retried).
func (db *Store) MarkInbox(ctx context.Context, id int64, errText string) error {
	_, err := db.Q(ctx).Exec(ctx, `UPDATE inbox SET processed_at = now(), attempts = attempts + 1,
		last_error = nullif($2, '') WHERE id = $1`, id, errText)
	return Translate(err)
}

// inboxColumns turns items into the column arrays sqlInsertInbox unnests.
func inboxColumns(items []commerce.InboxItem) []any {
	n := len(items)
	keys, subs, kinds, stores := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sealed := make([][]byte, n)
	for i, it := range items {
		keys[i], subs[i], kinds[i], stores[i], sealed[i] = it.DedupKey, it.Subject, it.Kind, it.Store, it.Sealed
	}
	return []any{keys, subs, kinds, stores, sealed}
}

// MarkInboxMany marks several events processed.
func (db *Store) MarkInboxMany(ctx context.Context, ids []int64, errText string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.Q(ctx).Exec(ctx, `UPDATE inbox SET processed_at = now(), attempts = attempts + 1,
		last_error = nullif($2, '') WHERE id = ANY($1)`, ids, errText)
	return Translate(err)
}

const orderCols = `id, subject_id, store, coalesce(retailer_id, ''), status, payment_status, reference_id,
	subtotal, tax, shipping, total, created_at, updated_at, sealed, erased_at IS NOT NULL, coalesce(logistics_id, '')`

func scanOrder(row pgx.Row) (commerce.OrderRow, error) {
	var o commerce.OrderRow
	err := row.Scan(&o.ID, &o.Subject, &o.Store, &o.RetailerID, &o.Status, &o.PaymentStatus, &o.ReferenceID,
		&o.Subtotal, &o.Tax, &o.Shipping, &o.Total, &o.CreatedAt, &o.UpdatedAt, &o.Sealed, &o.Erased, &o.LogisticsID)
	return o, err
}

// CreateOrder stores a new order.
func (db *Store) CreateOrder(ctx context.Context, o commerce.OrderRow) error {
	q := db.Q(ctx)
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
func (db *Store) routeOrder(ctx context.Context, alias, sql string, args []any) (string, []any, error) {
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
func (db *Store) orderExec(ctx context.Context, alias, sql string, args ...any) (pgconn.CommandTag, error) {
	sql, args, err := db.routeOrder(ctx, alias, sql, args)
	if broker.IsNotFound(err) {
		return pgconn.CommandTag{}, nil
	}
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := db.Q(ctx).Exec(ctx, sql, args...)
	return tag, Translate(err)
}

// orderExec1 is orderExec for a statement that must change the order:
// broker.ErrNotFound when it changed nothing.
func (db *Store) orderExec1(ctx context.Context, sql string, args ...any) error {
	tag, err := db.orderExec(ctx, "", sql, args...)
	if err == nil && tag.RowsAffected() == 0 {
		err = broker.ErrNotFound
	}
	return err
}

// orderShopper is the shopper of order id from the order index, for a
// statement that then names both and stays on that shopper's shard.
func (db *Store) orderShopper(ctx context.Context, id string) (string, error) {
	var subject string
	err := db.Q(ctx).QueryRow(ctx, sqlOrderIndex, id).Scan(&subject)
	return subject, Translate(err)
}

// GetOrder finds an order by id.
func (db *Store) GetOrder(ctx context.Context, id string) (commerce.OrderRow, error) {
	sql, args, err := db.routeOrder(ctx, "", `SELECT `+orderCols+` FROM orders WHERE id = $1`, []any{id})
	if err != nil {
		return commerce.OrderRow{}, err
	}
	o, err := scanOrder(db.Q(ctx).QueryRow(ctx, sql, args...))
	return o, Translate(err)
}

// OrderByReference finds an order by payment reference.
func (db *Store) OrderByReference(ctx context.Context, ref string) (commerce.OrderRow, error) {
	o, err := scanOrder(db.Q(ctx).QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE reference_id = $1`, ref))
	return o, Translate(err)
}

// UpdateOrderStatus sets an order's status and payment status (and its
// sealed part when given).
func (db *Store) UpdateOrderStatus(ctx context.Context, id, status, payment string, sealed []byte) error {
	return db.orderExec1(ctx, `UPDATE orders SET status = $2, payment_status = $3, sealed = coalesce($4, sealed),
		updated_at = now(), placed_at = GREATEST(placed_at, now() + CASE WHEN $2 = 'placed' THEN interval '0' END)
		WHERE id = $1 AND erased_at IS NULL`, id, status, payment, sealed)
}

// SetOrderRetailer records which retailer receives an order.
func (db *Store) SetOrderRetailer(ctx context.Context, id, retailer string) error {
	return db.orderExec1(ctx, `UPDATE orders SET retailer_id = $2 WHERE id = $1`, id, retailer)
}

// SetOrderLogistics dispatches an order to a logistics partner.
func (db *Store) SetOrderLogistics(ctx context.Context, id, logistics string) error {
	return db.orderExec1(ctx, `UPDATE orders SET logistics_id = $2, updated_at = now() WHERE id = $1 AND erased_at IS NULL`,
		id, logistics)
}

// BindDefaultCourier dispatches an order not yet dispatched to its
// retailer's default courier, when the retailer has one that is an enabled
// logistics partner; otherwise it changes nothing.
func (db *Store) BindDefaultCourier(ctx context.Context, id string) error {
	_, err := db.orderExec(ctx, "o", `UPDATE orders o SET logistics_id = r.default_courier
		FROM partners r JOIN partners c ON c.id = r.default_courier
		WHERE o.id = $1 AND o.logistics_id IS NULL AND r.id = o.retailer_id
		  AND c.kind = 'logistics' AND NOT c.disabled`, id)
	return err
}

// ListOrders lists a retailer's orders, newest first, with a cursor.
func (db *Store) ListOrders(ctx context.Context, f commerce.OrderFilter) ([]commerce.OrderRow, string, error) {
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
	rows, err := db.Q(ctx).Query(ctx, sql, args...)
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
func (db *Store) OrdersOfSubject(ctx context.Context, subject string) ([]commerce.OrderRow, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT `+orderCols+` FROM orders WHERE subject_id = $1 ORDER BY created_at`, subject)
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

// Enqueue adds a message to the outbox.
func (db *Store) Enqueue(ctx context.Context, it commerce.OutboxItem) (int64, error) {
	var id int64
	err := db.Q(ctx).QueryRow(ctx, `INSERT INTO outbox (ref, kind, subject_id, partner_id, vault_sealed, sealed)
		VALUES ($1, $2, nullif($3, ''), nullif($4, ''), $5, $6) RETURNING id`,
		it.Ref, it.Kind, it.Subject, it.Partner, it.VaultSealed, it.Sealed).Scan(&id)
	return id, Translate(err)
}

// sqlEnqueueMany adds outbox items in slice order (SaveTurns): WITH
// ORDINALITY keeps their ids in the order the conversation wrote them.
const sqlEnqueueMany = `INSERT INTO outbox (ref, kind, subject_id, partner_id, vault_sealed, sealed)
	SELECT r, k, nullif(s, ''), nullif(p, ''), v, b
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bytea[])
		WITH ORDINALITY AS t(r, k, s, p, v, b, n) ORDER BY n`

// ClaimOutbox leases due items: they are not offered again until the lease
// ends, so several senders (processes) never send one item at once.
//
// A lane is chosen by hashtext of "subject|partner" (the pair whose order
// the sender keeps), masked to be non-negative.
func (db *Store) ClaimOutbox(ctx context.Context, limit int, lease time.Duration, lane commerce.OutboxLane) ([]commerce.OutboxItem, error) {
	of, index := max(lane.Of, 1), lane.Index
	if index < 0 || index >= of {
		return nil, broker.Errorf(broker.EInvalid, "outbox lane %d of %d", index, of)
	}
	rows, err := db.Q(ctx).Query(ctx, `UPDATE outbox SET next_attempt_at = now() + $2::interval, attempts = attempts + 1
		WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= now()
			AND ($3 = 1 OR (hashtext(coalesce(subject_id, '') || '|' || coalesce(partner_id, '')) & 2147483647) % $3 = $4)
			ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING id, ref, kind, coalesce(subject_id, ''), coalesce(partner_id, ''), vault_sealed, sealed, attempts, created_at`,
		limit, lease, of, index)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.OutboxItem, error) {
		var it commerce.OutboxItem
		err := r.Scan(&it.ID, &it.Ref, &it.Kind, &it.Subject, &it.Partner, &it.VaultSealed, &it.Sealed, &it.Attempts, &it.CreatedAt)
		return it, err
	})
	if err != nil {
		return nil, Translate(err)
	}
	return out, nil
}

// OutboxRetry schedules another attempt.
func (db *Store) OutboxRetry(ctx context.Context, id int64, at time.Time, reason string) error {
	_, err := db.Q(ctx).Exec(ctx, `UPDATE outbox SET next_attempt_at = $2, last_error = $3 WHERE id = $1`, id, at, reason)
	return Translate(err)
}

// OutboxDead gives up on an item, recording why.
func (db *Store) OutboxDead(ctx context.Context, id int64, reason string) error {
	_, err := db.Q(ctx).Exec(ctx, `UPDATE outbox SET status = 'dead', last_error = $2,
		sealed = CASE WHEN vault_sealed THEN NULL ELSE sealed END WHERE id = $1`, id, reason)
	return Translate(err)
}

// ApplyMessageStatus records a delivery status, never moving backwards:
// sent < delivered < read, and failed is final.
func (db *Store) ApplyMessageStatus(ctx context.Context, providerID, subject, status string, errCode int) error {
	return applyStatuses(ctx, db.Bookkeeping(ctx),
		[]commerce.MessageStatus{{ProviderID: providerID, Subject: subject, Status: status, ErrCode: errCode}})
}

// RememberPartnerRef records that partner knows subject as ref.
func (db *Store) RememberPartnerRef(ctx context.Context, partner, ref, subject string) error {
	_, err := db.Q(ctx).Exec(ctx, `INSERT INTO partner_refs (partner_id, ref, subject_id) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, partner, ref, subject)
	return Translate(err)
}

// SubjectOfPartnerRef resolves a partner's customer_ref.
func (db *Store) SubjectOfPartnerRef(ctx context.Context, partner, ref string) (string, error) {
	var s string
	err := db.Q(ctx).QueryRow(ctx, `SELECT subject_id FROM partner_refs WHERE partner_id = $1 AND ref = $2`,
		partner, ref).Scan(&s)
	return s, Translate(err)
}

// sqlApplyStatuses upserts in provider_id order: concurrent batches that
// share messages then lock their rows in the same order and cannot
// deadlock. Statuses of an erased shopper (a send in flight during the
// erasure, a stale subject cache) are dropped: erasure removed every
// provider id of theirs and none may come back.
const sqlApplyStatuses = `INSERT INTO message_status AS m (provider_id, subject_id, status, error_code)
	SELECT p, nullif(s, ''), st, nullif(c, 0) FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS t(p, s, st, c)
	WHERE NOT (coalesce(t.s, '') = ANY (ARRAY(SELECT id FROM subjects WHERE id = ANY($2::text[]) AND erased_at IS NOT NULL)))
	ORDER BY p
	ON CONFLICT (provider_id) DO UPDATE SET status = EXCLUDED.status, error_code = EXCLUDED.error_code, updated_at = EXCLUDED.updated_at
	WHERE m.status <> 'failed' AND (EXCLUDED.status = 'failed' OR
		(CASE EXCLUDED.status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 4 ELSE 0 END) >
		(CASE m.status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 4 ELSE 0 END))`

// ApplyMessageStatuses records delivery statuses with one statement. Outside
// a transaction they are group-committed with those of concurrent callers
// (webhook requests carry few statuses each, and they are most of the
// traffic); either way they are durable when it returns.
func (db *Store) ApplyMessageStatuses(ctx context.Context, sts []commerce.MessageStatus) error {
	if len(sts) == 0 {
		return nil
	}
	if _, ok := bpg.TxFrom(ctx); !ok {
		_, err := db.groups().statuses.Do(ctx, sts, "message status write")
		return err
	}
	return applyStatuses(ctx, db.Q(ctx), sts)
}

func (db *Store) writeStatusBatch(reqs [][]commerce.MessageStatus) ([]struct{}, error) {
	all := slices.Concat(reqs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := applyStatuses(ctx, db.Pool, all); err != nil {
		return nil, err
	}
	return make([]struct{}, len(reqs)), nil
}

// applyStatuses writes statuses with one statement. Several statuses of one
// message are folded to the highest first: one statement may not update a
// row twice.
func applyStatuses(ctx context.Context, q bpg.Querier, sts []commerce.MessageStatus) error {
	best := make(map[string]commerce.MessageStatus, len(sts))
	for _, st := range sts {
		cur, ok := best[st.ProviderID]
		if st.ProviderID != "" && (!ok || commerce.StatusRank(st.Status) > commerce.StatusRank(cur.Status)) {
			best[st.ProviderID] = st
		}
	}
	if len(best) == 0 {
		return nil
	}
	// The statement orders the rows itself (see sqlApplyStatuses).
	ids, subs, states := make([]string, 0, len(best)), make([]string, 0, len(best)), make([]string, 0, len(best))
	codes := make([]int32, 0, len(best))
	for id, st := range best {
		ids, subs, states = append(ids, id), append(subs, st.Subject), append(states, st.Status)
		codes = append(codes, int32(st.ErrCode))
	}
	_, err := q.Exec(ctx, sqlApplyStatuses, ids, subs, states, codes)
	return Translate(err)
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
func (db *Store) GetOrderWithSubject(ctx context.Context, id string) (commerce.OrderRow, commerce.SubjectRow, error) {
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
	err = db.Q(ctx).QueryRow(ctx, sql, args...).Scan(
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

// SubjectWindows returns the window of each existing shopper among ids;
// absent shoppers are left out of the map.
func (db *Store) SubjectWindows(ctx context.Context, ids []string) (map[string]commerce.Window, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT id, coalesce(last_inbound_at, 'epoch'), erased_at IS NOT NULL
		FROM subjects WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, Translate(err)
	}
	out := make(map[string]commerce.Window, len(ids))
	var id string
	var w commerce.Window
	_, err = pgx.ForEachRow(rows, []any{&id, &w.LastInbound, &w.Erased}, func() error {
		out[id] = w
		return nil
	})
	return out, Translate(err)
}
