package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/commerce"
)

var _ commerce.GrievanceStore = (*Store)(nil)

const grievanceCols = `id, subject_id, store, sealed, opened_at, ack_due, acknowledged_at, resolve_due,
	escalated_at, resolved_at, coalesce(outcome, ''), coalesce(resolved_by, '')`

const (
	sqlInsertGrievance = `INSERT INTO grievances (id, subject_id, store, sealed, opened_at, ack_due, acknowledged_at, resolve_due)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	sqlGetGrievance = `SELECT ` + grievanceCols + ` FROM grievances WHERE id = $1`
	// $1 is the status filter ('' for all), $2 the desk's now.
	sqlListGrievances = `SELECT ` + grievanceCols + ` FROM grievances
		WHERE CASE $1::text
			WHEN 'open' THEN resolved_at IS NULL
			WHEN 'overdue' THEN resolved_at IS NULL AND resolve_due < $2
			WHEN 'resolved' THEN resolved_at IS NOT NULL
			ELSE true END
		ORDER BY opened_at DESC, id LIMIT $3`
	sqlResolveGrievance = `UPDATE grievances SET resolved_at = $3, outcome = $2, resolved_by = $4
		WHERE id = $1 AND resolved_at IS NULL`
	sqlEscalateGrievances = `UPDATE grievances SET escalated_at = $1
		WHERE id IN (SELECT id FROM grievances WHERE resolved_at IS NULL AND escalated_at IS NULL AND resolve_due < $1
			ORDER BY resolve_due LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING ` + grievanceCols
)

func scanGrievance(row pgx.Row) (commerce.Grievance, error) {
	var g commerce.Grievance
	err := row.Scan(&g.ID, &g.Subject, &g.Store, &g.Sealed, &g.OpenedAt, &g.AckDue, &g.AcknowledgedAt, &g.ResolveDue,
		&g.EscalatedAt, &g.ResolvedAt, &g.Outcome, &g.ResolvedBy)
	return g, err
}

// InsertGrievance stores a new ticket.
func (db *Store) InsertGrievance(ctx context.Context, g commerce.Grievance) error {
	_, err := db.Q(ctx).Exec(ctx, sqlInsertGrievance, g.ID, g.Subject, g.Store, g.Sealed, g.OpenedAt, g.AckDue,
		g.AcknowledgedAt, g.ResolveDue)
	return Translate(err)
}

// GetGrievance reads one ticket.
func (db *Store) GetGrievance(ctx context.Context, id string) (commerce.Grievance, error) {
	g, err := scanGrievance(db.Q(ctx).QueryRow(ctx, sqlGetGrievance, id))
	return g, Translate(err)
}

// ListGrievances lists tickets by desk status, newest first.
func (db *Store) ListGrievances(ctx context.Context, status string, now time.Time, limit int) ([]commerce.Grievance, error) {
	rows, err := db.Q(ctx).Query(ctx, sqlListGrievances, status, now, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Grievance, error) { return scanGrievance(r) })
	return out, Translate(err)
}

// ResolveGrievance records an outcome once.
func (db *Store) ResolveGrievance(ctx context.Context, id, outcome, by string, at time.Time) (bool, error) {
	tag, err := db.Q(ctx).Exec(ctx, sqlResolveGrievance, id, outcome, at, by)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// EscalateOverdue marks overdue tickets escalated (each once, even with
// several sweepers: the rows are locked and skipped).
func (db *Store) EscalateOverdue(ctx context.Context, now time.Time, limit int) ([]commerce.Grievance, error) {
	rows, err := db.Q(ctx).Query(ctx, sqlEscalateGrievances, now, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Grievance, error) { return scanGrievance(r) })
	return out, Translate(err)
}

var _ commerce.BreachStore = (*Store)(nil)

// ReleaseGroups implements commerce.BreachStore with the broker's read of
// the audit log (bpg.AuditReports.AuditReleaseGroups).
func (db *Store) ReleaseGroups(ctx context.Context, f commerce.BreachFilter, size uint64) ([]commerce.ReleaseGroup, error) {
	return db.DB.AuditReports().AuditReleaseGroups(ctx, f.From, f.To, f.Actor, size)
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
func (db *Store) InsertBreach(ctx context.Context, b commerce.Breach, subjects []string) error {
	q := db.Q(ctx)
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
func (db *Store) GetBreach(ctx context.Context, id string) (commerce.Breach, error) {
	b, err := scanBreach(db.Q(ctx).QueryRow(ctx, `SELECT `+breachCols+` FROM breaches WHERE id = $1`, id))
	return b, Translate(err)
}

// ListBreaches lists breaches, newest first.
func (db *Store) ListBreaches(ctx context.Context) ([]commerce.Breach, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT `+breachCols+` FROM breaches ORDER BY aware_at DESC, id LIMIT 1000`)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Breach, error) { return scanBreach(r) })
	return out, Translate(err)
}

// PendingBreachNotices claims affected shoppers not yet notified: the rows
// stay locked for the transaction in ctx, and other claimers skip them.
func (db *Store) PendingBreachNotices(ctx context.Context, id string, limit int) ([]commerce.BreachNotice, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT pseudonym FROM breach_subjects WHERE breach_id = $1 AND status = 'pending'
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
func (db *Store) SetBreachNotice(ctx context.Context, id string, n commerce.BreachNotice) error {
	_, err := db.Q(ctx).Exec(ctx, `UPDATE breach_subjects SET subject_id = nullif($3, ''), outbox_ref = nullif($4, ''), status = $5
		WHERE breach_id = $1 AND pseudonym = $2`, id, n.Pseudonym, n.SubjectID, n.Ref, n.Status)
	return Translate(err)
}

// MarkBreachNotified records when the notices went out.
func (db *Store) MarkBreachNotified(ctx context.Context, id string, at time.Time) error {
	_, err := db.Q(ctx).Exec(ctx, `UPDATE breaches SET notified_at = coalesce(notified_at, $2) WHERE id = $1`, id, at)
	return Translate(err)
}

// BreachNoticeStatuses counts a breach's notices by delivery status.
func (db *Store) BreachNoticeStatuses(ctx context.Context, id string) (map[string]int, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT coalesce(ms.status, CASE o.status WHEN 'dead' THEN 'failed' WHEN 'sent' THEN 'sent' END, b.status), count(*)
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
func (db *Store) SubjectIDs(ctx context.Context) ([]string, error) {
	rows, err := db.Q(ctx).Query(ctx, `SELECT id FROM subjects WHERE erased_at IS NULL`)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, Translate(err)
}

var _ commerce.NominationStore = (*Store)(nil)

const nominationCols = `id, subject_id, store, nominee_index, sealed, created_at, confirmed_at, coalesce(event, ''), event_at, coalesce(event_by, '')`

// InsertNomination stores a nomination.
func (db *Store) InsertNomination(ctx context.Context, n commerce.Nomination) error {
	_, err := db.Q(ctx).Exec(ctx, `INSERT INTO nominations (id, subject_id, store, nominee_index, sealed, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, n.ID, n.Subject, n.Store, n.Index, n.Sealed, n.CreatedAt)
	return Translate(err)
}

// GetNomination reads a nomination.
func (db *Store) GetNomination(ctx context.Context, id string) (commerce.Nomination, error) {
	var n commerce.Nomination
	err := db.Q(ctx).QueryRow(ctx, `SELECT `+nominationCols+` FROM nominations WHERE id = $1`, id).Scan(&n.ID, &n.Subject,
		&n.Store, &n.Index, &n.Sealed, &n.CreatedAt, &n.ConfirmedAt, &n.Event, &n.EventAt, &n.EventBy)
	return n, Translate(err)
}

// ConfirmNomination records the nominee's confirmation once.
func (db *Store) ConfirmNomination(ctx context.Context, id string, at time.Time) (bool, error) {
	tag, err := db.Q(ctx).Exec(ctx, `UPDATE nominations SET confirmed_at = $2 WHERE id = $1 AND confirmed_at IS NULL`, id, at)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// SetNominationEvent records the death or incapacity once.
func (db *Store) SetNominationEvent(ctx context.Context, id, event, by string, at time.Time) (bool, error) {
	tag, err := db.Q(ctx).Exec(ctx, `UPDATE nominations SET event = $2, event_by = $3, event_at = $4 WHERE id = $1 AND event IS NULL`,
		id, event, by, at)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// SubjectWaIndex returns the blind index of a shopper's phone number
// (subject_identifiers, migration 0019); ENotFound when they have none
// (a username user, or after erasure). An index carried over from before
// identifiers had kinds counts, since it was the phone when there was one.
func (db *Store) SubjectWaIndex(ctx context.Context, subject string) ([]byte, error) {
	var idx []byte
	err := db.Q(ctx).QueryRow(ctx, `SELECT blind_index FROM subject_identifiers
		WHERE subject_id = $1 AND kind IN ('wa', 'unknown') ORDER BY kind = 'wa' DESC LIMIT 1`, subject).Scan(&idx)
	return idx, Translate(err)
}

// GrievanceCounts counts tickets for the SLA report in one statement.
func (db *Store) GrievanceCounts(ctx context.Context, now time.Time) (commerce.SLAReport, error) {
	var r commerce.SLAReport
	err := db.Q(ctx).QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE resolved_at IS NULL),
		count(*) FILTER (WHERE resolved_at IS NULL AND resolve_due < $1),
		count(*) FILTER (WHERE escalated_at IS NOT NULL),
		count(*) FILTER (WHERE resolved_at IS NOT NULL),
		count(*) FILTER (WHERE resolved_at IS NOT NULL AND resolved_at <= resolve_due)
		FROM grievances`, now).Scan(&r.Total, &r.Open, &r.Overdue, &r.Escalated, &r.Resolved, &r.ResolvedInTime)
	return r, Translate(err)
}
