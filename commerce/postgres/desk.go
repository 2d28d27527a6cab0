package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/commerce"
)

// Desk is the grievance desk's tickets, their SLA counts and escalation.
type Desk struct{ *base }

var _ commerce.GrievanceStore = (*Desk)(nil)

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
func (db *Desk) InsertGrievance(ctx context.Context, g commerce.Grievance) error {
	_, err := db.q(ctx).Exec(ctx, sqlInsertGrievance, g.ID, g.Subject, g.Store, g.Sealed, g.OpenedAt, g.AckDue,
		g.AcknowledgedAt, g.ResolveDue)
	return Translate(err)
}

// GetGrievance reads one ticket.
func (db *Desk) GetGrievance(ctx context.Context, id string) (commerce.Grievance, error) {
	g, err := scanGrievance(db.q(ctx).QueryRow(ctx, sqlGetGrievance, id))
	return g, Translate(err)
}

// ListGrievances lists tickets by desk status, newest first.
func (db *Desk) ListGrievances(ctx context.Context, status string, now time.Time, limit int) ([]commerce.Grievance, error) {
	rows, err := db.q(ctx).Query(ctx, sqlListGrievances, status, now, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Grievance, error) { return scanGrievance(r) })
	return out, Translate(err)
}

// ResolveGrievance records an outcome once.
func (db *Desk) ResolveGrievance(ctx context.Context, id, outcome, by string, at time.Time) (bool, error) {
	tag, err := db.q(ctx).Exec(ctx, sqlResolveGrievance, id, outcome, at, by)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// EscalateOverdue marks overdue tickets escalated (each once, even with
// several sweepers: the rows are locked and skipped).
func (db *Desk) EscalateOverdue(ctx context.Context, now time.Time, limit int) ([]commerce.Grievance, error) {
	rows, err := db.q(ctx).Query(ctx, sqlEscalateGrievances, now, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.Grievance, error) { return scanGrievance(r) })
	return out, Translate(err)
}

// GrievanceCounts counts tickets for the SLA report in one statement.
func (db *Desk) GrievanceCounts(ctx context.Context, now time.Time) (commerce.SLAReport, error) {
	var r commerce.SLAReport
	err := db.q(ctx).QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE resolved_at IS NULL),
		count(*) FILTER (WHERE resolved_at IS NULL AND resolve_due < $1),
		count(*) FILTER (WHERE escalated_at IS NOT NULL),
		count(*) FILTER (WHERE resolved_at IS NOT NULL),
		count(*) FILTER (WHERE resolved_at IS NOT NULL AND resolved_at <= resolve_due)
		FROM grievances`, now).Scan(&r.Total, &r.Open, &r.Overdue, &r.Escalated, &r.Resolved, &r.ResolvedInTime)
	return r, Translate(err)
}
