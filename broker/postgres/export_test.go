package postgres

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
)

// AuditReadHashFloor streams the audit log as VerifyAudit does (the same
// parts, snapshot and COPY) but only hashes each leaf into its part's
// compact range: no canonical scan, no column, time or subtree check, no
// signed root. It is the least work any verification from this database
// can do, the floor BenchmarkAuditVerifyFloor sets beside
// BenchmarkAuditVerify. It returns the rows read.
func AuditReadHashFloor(ctx context.Context, db *DB) (uint64, error) {
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	var size int64
	var snapshotID string
	if err := tx.QueryRow(ctx, `SELECT size, pg_export_snapshot() FROM audit_tree WHERE id`).Scan(&size, &snapshotID); err != nil {
		return 0, err
	}
	parts := auditVerifyParts(uint64(size))
	ranges := make([]*audit.Range, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for k := range parts {
		lo, sql := auditPartCopy(uint64(size), k, parts)
		ranges[k] = audit.NewRange(lo)
		wg.Go(func() {
			lh := audit.NewLeafHasher()
			var h [audit.HashSize]byte
			errs[k] = db.AuditReports().auditCopyOutSnapshot(ctx, snapshotID, sql, func(f [][]byte) error {
				return ranges[k].Append(lh.Sum(h[:0], f[5]), nil)
			})
		})
	}
	wg.Wait()
	var n uint64
	for k, r := range ranges {
		if errs[k] != nil {
			return 0, errs[k]
		}
		n += r.End() - r.Begin()
	}
	return n, nil
}
