package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/commerce"
)

// Breaches is the breach workbench's store: breaches, the releases they
// may touch (read from the audit log), and their notices to shoppers.
type Breaches struct{ *base }

var _ commerce.BreachStore = (*Breaches)(nil)

// ReleaseGroups implements commerce.BreachStore with the broker's read of
// the audit log (bpg.AuditReports.AuditReleaseGroups).
func (db *Breaches) ReleaseGroups(ctx context.Context, f commerce.BreachFilter, size uint64) ([]commerce.ReleaseGroup, error) {
	return db.pg.AuditReports().AuditReleaseGroups(ctx, f.From, f.To, f.Actor, size)
}

const breachCols = `id, aware_at, window_from, window_to, partner_id, category, summary_code, opened_by, log_size,
	affected, releases, categories, recipients, notified_at`

func scanBreach(row pgx.Row) (commerce.Breach, error) {
	var b commerce.Breach
	var size int64
	err := row.Scan(&b.ID, &b.AwareAt, &b.From, &b.To, &b.Partner, &b.Category, &b.SummaryCode, &b.OpenedBy, &size,
		&b.Affected, &b.Releases, &b.Categories, &b.Recipients, &b.NotifiedAt)
	b.LogSize = uint64(size)
	return b, err
}

// InsertBreach stores a breach and its affected pseudonyms.
func (db *Breaches) InsertBreach(ctx context.Context, b commerce.Breach, subjects []string) error {
	q := db.q(ctx)
	_, err := q.Exec(ctx, `INSERT INTO breaches (`+breachCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		b.ID, b.AwareAt, b.From, b.To, b.Partner, b.Category, b.SummaryCode, b.OpenedBy, int64(b.LogSize), b.Affected,
		b.Releases, b.Categories, b.Recipients, b.NotifiedAt)
	if err != nil {
		return Translate(err)
	}
	_, err = q.Exec(ctx, `INSERT INTO breach_subjects (breach_id, pseudonym) SELECT $1, unnest($2::text[])`, b.ID, subjects)
	return Translate(err)
}

// GetBreach reads one breach.
func (db *Breaches) GetBreach(ctx context.Context, id string) (commerce.Breach, error) {
	b, err := scanBreach(db.q(ctx).QueryRow(ctx, `SELECT `+breachCols+` FROM breaches WHERE id = $1`, id))
	return b, Translate(err)
}

// ListBreaches lists breaches, newest first.
func (db *Breaches) ListBreaches(ctx context.Context) ([]commerce.Breach, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT `+breachCols+` FROM breaches ORDER BY aware_at DESC, id LIMIT 1000`)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Breach, error) { return scanBreach(r) })
	return out, Translate(err)
}

// PendingBreachNotices claims affected shoppers not yet notified: the rows
// stay locked for the transaction in ctx, and other claimers skip them.
func (db *Breaches) PendingBreachNotices(ctx context.Context, id string, limit int) ([]commerce.BreachNotice, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT pseudonym FROM breach_subjects WHERE breach_id = $1 AND status = 'pending'
		ORDER BY pseudonym LIMIT $2 FOR UPDATE SKIP LOCKED`, id, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.BreachNotice, error) {
		var n commerce.BreachNotice
		return n, r.Scan(&n.Pseudonym)
	})
	return out, Translate(err)
}

// SetBreachNotice records the notice sent to one affected shopper.
func (db *Breaches) SetBreachNotice(ctx context.Context, id string, n commerce.BreachNotice) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE breach_subjects SET subject_id = nullif($3, ''), outbox_ref = nullif($4, ''), status = $5
		WHERE breach_id = $1 AND pseudonym = $2`, id, n.Pseudonym, n.SubjectID, n.Ref, n.Status)
	return Translate(err)
}

// MarkBreachNotified records when the notices went out.
func (db *Breaches) MarkBreachNotified(ctx context.Context, id string, at time.Time) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE breaches SET notified_at = coalesce(notified_at, $2) WHERE id = $1`, id, at)
	return Translate(err)
}

// BreachNoticeStatuses counts a breach's notices by delivery status.
func (db *Breaches) BreachNoticeStatuses(ctx context.Context, id string) (map[string]int, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT coalesce(ms.status, CASE o.status WHEN 'dead' THEN 'failed' WHEN 'sent' THEN 'sent' END, b.status), count(*)
		FROM breach_subjects b
		LEFT JOIN outbox o ON o.ref = b.outbox_ref
		LEFT JOIN message_status ms ON ms.provider_id = o.provider_id
		WHERE b.breach_id = $1 GROUP BY 1`, id)
	if err != nil {
		return nil, Translate(err)
	}
	out := map[string]int{}
	var st string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error { out[st] = n; return nil })
	return out, Translate(err)
}

// SubjectIDs lists the shoppers not erased.
func (db *Breaches) SubjectIDs(ctx context.Context) ([]string, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT id FROM subjects WHERE erased_at IS NULL`)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, Translate(err)
}
