package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Notices keeps the recipient notices (erasures, withdrawals,
// corrections) to partners, their acknowledgements and acknowledgement
// keys, the releases they are about, and corrected orders' sealed parts.
type Notices struct{ *base }

var _ commerce.NoticeStore = (*Notices)(nil)

// noticeCols is the column list every notice query reads, in the order
// scanNotice expects. notified_at is when the partner first had the event:
// its webhook delivery, or its first GET /v1/events, whichever came first.
const noticeCols = `n.seq, n.id, n.partner_id, n.type, n.subject, n.body, n.created_at, n.deadline,
	LEAST(n.fetched_at, o.sent_at), n.acked_at, n.ack_signature IS NOT NULL, n.overdue_at`

const noticeFrom = ` FROM partner_notices n LEFT JOIN outbox o ON o.ref = n.outbox_ref AND o.status = 'sent'`

func scanNotice(row pgx.Row) (commerce.Notice, error) {
	var n commerce.Notice
	err := row.Scan(&n.Seq, &n.ID, &n.Partner, &n.Type, &n.Subject, &n.Body, &n.CreatedAt, &n.Deadline,
		&n.NotifiedAt, &n.AckedAt, &n.Signed, &n.OverdueAt)
	return n, err
}

func (db *Notices) notices(ctx context.Context, sql string, args ...any) ([]commerce.Notice, error) {
	rows, err := db.q(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, Translate(err)
	}
	defer rows.Close()
	var out []commerce.Notice
	for rows.Next() {
		n, err := scanNotice(rows)
		if err != nil {
			return nil, Translate(err)
		}
		out = append(out, n)
	}
	return out, Translate(rows.Err())
}

// InsertNotice records a notice as sent.
func (db *Notices) InsertNotice(ctx context.Context, n commerce.Notice) error {
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO partner_notices (id, partner_id, type, subject, body, outbox_ref,
		created_at, deadline) VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7, $8)`,
		n.ID, n.Partner, n.Type, n.Subject, n.Body, n.OutboxRef, n.CreatedAt, n.Deadline)
	return Translate(err)
}

// PartnerNotices returns a partner's notices after cursor seq, oldest
// first, and marks those never served before as fetched at now.
func (db *Notices) PartnerNotices(ctx context.Context, partner string, after int64, limit int, now time.Time) ([]commerce.Notice, error) {
	list, err := db.notices(ctx, `SELECT `+noticeCols+noticeFrom+` WHERE n.partner_id = $1 AND n.seq > $2
		ORDER BY n.seq LIMIT $3`, partner, after, limit)
	if err != nil || len(list) == 0 {
		return list, err
	}
	_, err = db.q(ctx).Exec(ctx, `UPDATE partner_notices SET fetched_at = $4 WHERE partner_id = $1
		AND seq > $2 AND seq <= $3 AND fetched_at IS NULL`, partner, after, list[len(list)-1].Seq, now)
	return list, Translate(err)
}

// GetNotice returns one of a partner's notices; another partner's is
// not found.
func (db *Notices) GetNotice(ctx context.Context, partner, id string) (commerce.Notice, error) {
	n, err := scanNotice(db.q(ctx).QueryRow(ctx, `SELECT `+noticeCols+noticeFrom+
		` WHERE n.id = $1 AND n.partner_id = $2`, id, partner))
	return n, Translate(err)
}

// AckNotice records the acknowledgement of an open notice; ok is false
// when it was acknowledged already (the first acknowledgement stands).
func (db *Notices) AckNotice(ctx context.Context, partner, id string, at time.Time, body, signature []byte) (bool, error) {
	tag, err := db.q(ctx).Exec(ctx, `UPDATE partner_notices SET acked_at = $3, ack_body = $4, ack_signature = $5
		WHERE id = $1 AND partner_id = $2 AND acked_at IS NULL`, id, partner, at, body, signature)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// NoticeAck returns the evidence of an acknowledgement: the bytes the
// partner signed and its signature (nil when unsigned).
func (db *Notices) NoticeAck(ctx context.Context, id string) (body, signature []byte, err error) {
	err = db.q(ctx).QueryRow(ctx, `SELECT ack_body, ack_signature FROM partner_notices WHERE id = $1 AND acked_at IS NOT NULL`,
		id).Scan(&body, &signature)
	return body, signature, Translate(err)
}

// MarkOverdue marks the open notices whose deadline passed before now and
// returns them. Each is returned to exactly one caller, however many
// processes run it, so its missed deadline is audited once.
func (db *Notices) MarkOverdue(ctx context.Context, now time.Time) ([]commerce.Notice, error) {
	return db.notices(ctx, `WITH m AS (UPDATE partner_notices SET overdue_at = $1
		WHERE acked_at IS NULL AND overdue_at IS NULL AND deadline < $1 RETURNING id)
		SELECT `+noticeCols+noticeFrom+` JOIN m ON m.id = n.id ORDER BY n.seq`, now)
}

// OverduePartners returns the partners holding a notice past its deadline
// and not acknowledged.
func (db *Notices) OverduePartners(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT DISTINCT partner_id FROM partner_notices
		WHERE acked_at IS NULL AND deadline < $1`, now)
	if err != nil {
		return nil, Translate(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, Translate(err)
}

// SubjectNotices returns the notices about a shopper (by audit pseudonym).
func (db *Notices) SubjectNotices(ctx context.Context, pseudonym string) ([]commerce.Notice, error) {
	return db.notices(ctx, `SELECT `+noticeCols+noticeFrom+` WHERE n.subject = $1 ORDER BY n.seq`, pseudonym)
}

// OpenNotices returns the notices not yet acknowledged, oldest first, at
// most limit (the dashboard's list).
func (db *Notices) OpenNotices(ctx context.Context, limit int) ([]commerce.Notice, error) {
	return db.notices(ctx, `SELECT `+noticeCols+noticeFrom+` WHERE n.acked_at IS NULL ORDER BY n.seq LIMIT $1`, limit)
}

// PartnerAckKey returns a partner's registered Ed25519 ack key, nil when
// it has none.
func (db *Notices) PartnerAckKey(ctx context.Context, partner string) ([]byte, error) {
	var key []byte
	err := db.q(ctx).QueryRow(ctx, `SELECT ack_key FROM partners WHERE id = $1`, partner).Scan(&key)
	return key, Translate(err)
}

// SetPartnerAckKey registers (or, with nil, removes) a partner's ack key.
func (db *Notices) SetPartnerAckKey(ctx context.Context, partner string, key []byte) error {
	tag, err := db.q(ctx).Exec(ctx, `UPDATE partners SET ack_key = $2 WHERE id = $1`, partner, key)
	if err != nil {
		return Translate(err)
	}
	if tag.RowsAffected() == 0 {
		return Translate(pgx.ErrNoRows)
	}
	return nil
}

// SubjectReleases returns the releases (outcome released or partial) about
// a shopper, by audit pseudonym, to partners: those in the tree and those
// still pending, so that a release committed a moment ago is counted.
func (db *Notices) SubjectReleases(ctx context.Context, pseudonym string) ([]audit.Entry, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT leaf FROM audit_entries WHERE subject = $1
		AND outcome IN ('released', 'partial') AND split_part(actor, ':', 1) = ANY($2)
		UNION ALL
		SELECT entry FROM audit_pending WHERE convert_from(entry, 'UTF8')::jsonb->>'subject' = $1`,
		pseudonym, partnerKinds())
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Entry, error) {
		var b []byte
		if err := r.Scan(&b); err != nil {
			return audit.Entry{}, err
		}
		return audit.ParseEntry(b)
	})
	return out, Translate(err)
}

func partnerKinds() []string {
	out := make([]string, len(broker.PartnerKinds))
	for i, k := range broker.PartnerKinds {
		out[i] = string(k)
	}
	return out
}

// ResealOrder replaces the sealed part of an order not erased (a
// correction of the shopper's data); status and times are left alone.
func (db *Notices) ResealOrder(ctx context.Context, id string, sealed []byte) error {
	return db.orderExec1(ctx, `UPDATE orders SET sealed = $2, updated_at = now() WHERE id = $1 AND erased_at IS NULL`, id, sealed)
}
