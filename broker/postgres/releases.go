package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
)

// sqlReleaseGroups groups the releases of a window by subject, recipient
// and released fields. The lower idx bound comes from time_hwm (monotonic
// in idx), so the scan starts at the window; $4 caps it at the verified
// size. The released array is cut out of the canonical leaf as bytes (its
// key is unique and its items are field names): parsing every leaf as JSON
// costs five times as much over a million entries.
const sqlReleaseGroups = `SELECT subject, actor, CASE WHEN p > 0 THEN substring(leaf FROM p + 11 FOR position(']'::bytea IN substring(leaf FROM p)) - 11)
		ELSE '[]'::bytea END, count(*)
	FROM (SELECT subject, actor, leaf, position('"released":'::bytea IN leaf) AS p FROM audit_entries
		WHERE idx >= coalesce((SELECT min(idx) FROM audit_entries WHERE time_hwm >= $1), 0)
		  AND idx < $4
		  AND time >= $1 AND time < $2
		  AND outcome IN ('released', 'partial') AND subject <> ''
		  AND ($3 = '' OR actor = $3)) r
	GROUP BY 1, 2, 3`

// AuditReleaseGroups reads the releases (released or partial entries with
// a subject) logged in [from, to) by actor ("" for every one) among the
// first size entries, grouped. The grouping gets the memory to stay off
// disk (a window of a busy month has a group per shopper and recipient).
func (rp *AuditReports) AuditReleaseGroups(ctx context.Context, from, to time.Time, actor string, size uint64) ([]broker.ReleaseGroup, error) {
	var out []broker.ReleaseGroup
	err := rp.db.InTx(ctx, func(ctx context.Context) error {
		q := rp.db.q(ctx)
		if _, err := q.Exec(ctx, `SET LOCAL work_mem = '128MB'`); err != nil {
			return err
		}
		rows, err := q.Query(ctx, sqlReleaseGroups, from, to, actor, int64(size))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.ReleaseGroup, error) {
			var g broker.ReleaseGroup
			var released []byte
			err := r.Scan(&g.Subject, &g.Actor, &released, &g.Count)
			g.Released = string(released)
			return g, err
		})
		return err
	})
	return out, Translate(err)
}
