package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/commerce"
)

// Warnings keeps the warnings sent to shoppers before an erasure for
// inactivity.
type Warnings struct{ *base }

var _ commerce.WarningStore = (*Warnings)(nil)

// WarnCandidates returns up to limit shoppers, not erased, silent since
// before, without a warning given after their last message.
func (db *Warnings) WarnCandidates(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT s.id FROM subjects s
		LEFT JOIN erasure_warnings w ON w.subject_id = s.id AND w.warned_at >= s.last_interaction_at
		WHERE s.erased_at IS NULL AND s.last_interaction_at < $1 AND w.subject_id IS NULL
		ORDER BY s.last_interaction_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, Translate(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, Translate(err)
}

// PutWarning records (or renews) a shopper's warning.
func (db *Warnings) PutWarning(ctx context.Context, subject string, warnedAt, eraseAfter time.Time) error {
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO erasure_warnings (subject_id, warned_at, erase_after) VALUES ($1, $2, $3)
		ON CONFLICT (subject_id) DO UPDATE SET warned_at = EXCLUDED.warned_at, erase_after = EXCLUDED.erase_after`,
		subject, warnedAt, eraseAfter)
	return Translate(err)
}

// TakeCancelledWarnings removes the warnings the shopper answered (a
// message after the warning) and those of erased shoppers; it returns the
// answered ones, each to one caller.
func (db *Warnings) TakeCancelledWarnings(ctx context.Context, limit int) ([]string, error) {
	// Without SKIP LOCKED (on Citus both tables are distributed by the
	// shopper, and Citus takes row locks only on one shard): the DELETE
	// itself gives each row to one caller, and the condition is checked
	// again on the rows it deletes.
	rows, err := db.q(ctx).Query(ctx, `DELETE FROM erasure_warnings w USING subjects s
		WHERE s.id = w.subject_id AND (s.last_interaction_at > w.warned_at OR s.erased_at IS NOT NULL)
			AND w.subject_id IN (SELECT w2.subject_id FROM erasure_warnings w2
			JOIN subjects s2 ON s2.id = w2.subject_id
			WHERE s2.last_interaction_at > w2.warned_at OR s2.erased_at IS NOT NULL
			LIMIT $1)
		RETURNING w.subject_id, s.erased_at IS NOT NULL`, limit)
	if err != nil {
		return nil, Translate(err)
	}
	var out []string
	var id string
	var erased bool
	_, err = pgx.ForEachRow(rows, []any{&id, &erased}, func() error {
		if !erased {
			out = append(out, id)
		}
		return nil
	})
	return out, Translate(err)
}

// WarningReady reports whether the shopper was warned, no later than the
// deadline now, and has been silent since the warning.
func (db *Warnings) WarningReady(ctx context.Context, subject string, now time.Time) (bool, error) {
	var ok bool
	err := db.q(ctx).QueryRow(ctx, `SELECT true FROM erasure_warnings w JOIN subjects s ON s.id = w.subject_id
		WHERE w.subject_id = $1 AND w.erase_after <= $2 AND w.warned_at >= s.last_interaction_at`, subject, now).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return ok, Translate(err)
}

// ListWarnings returns the warnings pending (the dashboard).
func (db *Warnings) ListWarnings(ctx context.Context, limit int) ([]commerce.Warning, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT subject_id, warned_at, erase_after FROM erasure_warnings
		ORDER BY erase_after LIMIT $1`, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Warning, error) {
		var w commerce.Warning
		err := r.Scan(&w.Subject, &w.WarnedAt, &w.EraseAfter)
		return w, err
	})
	return out, Translate(err)
}
