package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
)

// AuditReports is what officers and auditors ask of the audit log on a DB
// (a replica serves it as well as the primary): entries by filter
// (audit_filter.go), counts and the released matrix (this file), the
// releases grouped for recipient reports (releases.go), the export
// (audit_export.go) and the full re-verification of the stored log, with
// or without a witness policy (audit_verify.go).
type AuditReports struct{ db *DB }

// AuditReports returns the audit log's reports on db.
func (db *DB) AuditReports() *AuditReports { return &AuditReports{db} }

// AuditCounts counts entries per bucket (starting at from), actor, purpose
// and outcome, over [from, to). Whole-hour buckets are read from counters
// kept at integration, so the range is widened to whole hours (from rounded
// down, to up); shorter buckets are counted exactly from the entries of
// the range.
func (rp *AuditReports) AuditCounts(ctx context.Context, from, to time.Time, bucket time.Duration) ([]broker.AuditCount, error) {
	if bucket <= 0 || !from.Before(to) {
		return nil, broker.Errorf(broker.EInvalid, "need a positive bucket and from before to")
	}
	var rows pgx.Rows
	var err error
	if bucket%time.Hour == 0 {
		rows, err = rp.db.q(ctx).Query(ctx, sqlAuditCountsHourly, from.UTC().Truncate(time.Hour), to, bucket.Microseconds())
	} else {
		w, werr := rp.auditWhere(ctx, broker.AuditFilter{From: from, To: to})
		if werr != nil || w.empty {
			return nil, werr
		}
		w.args = append(w.args, from, bucket.Microseconds())
		sql := fmt.Sprintf(`SELECT date_bin($%d::bigint * interval '1 microsecond', time, $%d) AS b, actor, purpose,
			outcome, count(*) FROM audit_entries%s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
			len(w.args), len(w.args)-1, w.sql())
		rows, err = rp.db.q(ctx).Query(ctx, sql, w.customPlan()...)
	}
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.AuditCount, error) {
		var c broker.AuditCount
		err := r.Scan(&c.Bucket, &c.Actor, &c.Purpose, &c.Outcome, &c.Count)
		c.Bucket = c.Bucket.UTC()
		return c, err
	})
	return out, Translate(err)
}

// ReleasedMatrix returns what was actually released: actor × field ×
// purpose, from counters kept at integration.
func (rp *AuditReports) ReleasedMatrix(ctx context.Context) ([]broker.ReleasedCell, error) {
	rows, err := rp.db.q(ctx).Query(ctx, sqlAuditReleasedMatrix)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.ReleasedCell, error) {
		var c broker.ReleasedCell
		err := r.Scan(&c.Actor, &c.Field, &c.Purpose, &c.Count, &c.First, &c.Last)
		c.First, c.Last = c.First.UTC(), c.Last.UTC()
		return c, err
	})
	return out, Translate(err)
}
