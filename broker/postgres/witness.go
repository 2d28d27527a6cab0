package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
)

// Witness cosignatures (SPEC §6): the cosigner (audit/witness) stores the
// line each witness returned for a checkpoint; readers publish the
// checkpoint note followed by its lines (migration 0016).

const (
	sqlAuditAddCosignature = `INSERT INTO audit_cosignatures (size, witness, line) VALUES ($1, $2, $3)
		ON CONFLICT (size, witness) DO NOTHING`
	sqlAuditWitnessSize       = `SELECT coalesce(max(size), 0) FROM audit_cosignatures WHERE witness = $1`
	sqlAuditLatestWithCosigns = `SELECT c.size, c.note, coalesce(string_agg(s.line, '' ORDER BY s.witness), '')
		FROM audit_checkpoints c LEFT JOIN audit_cosignatures s ON s.size = c.size
		WHERE c.size = (SELECT max(size) FROM audit_checkpoints) GROUP BY c.size, c.note`
	sqlAuditLatestCosigned = `SELECT c.size, c.note, string_agg(s.line, '' ORDER BY s.witness)
		FROM audit_cosignatures s JOIN audit_checkpoints c ON c.size = s.size
		GROUP BY c.size, c.note HAVING count(*) >= $1 ORDER BY c.size DESC LIMIT 1`
	sqlAuditCosignaturesAt = `SELECT coalesce(string_agg(line, '' ORDER BY witness), '') FROM audit_cosignatures WHERE size = $1`
)

// AddCosignature stores a witness's cosignature line for the checkpoint of
// the given size (the caller verified it). A second line of the same
// witness for the same size is ignored.
func (tr *AuditTree) AddCosignature(ctx context.Context, size uint64, witness, line string) error {
	_, err := tr.db.q(ctx).Exec(ctx, sqlAuditAddCosignature, int64(size), witness, line)
	return Translate(err)
}

// WitnessCosignedSize returns the largest checkpoint size the witness
// cosigned (0 before its first cosignature).
func (tr *AuditTree) WitnessCosignedSize(ctx context.Context, witness string) (uint64, error) {
	var s int64
	if err := tr.db.q(ctx).QueryRow(ctx, sqlAuditWitnessSize, witness).Scan(&s); err != nil {
		return 0, Translate(err)
	}
	return uint64(s), nil
}

// CosignedCheckpoint returns a checkpoint note with the cosignature lines
// stored for it appended. With minCosigs 0 it is the latest checkpoint,
// with whatever cosignatures it has (GET /v1/audit/checkpoint); otherwise
// the latest one with at least minCosigs stored lines (the caller checks
// them against its policy). ENotFound when there is none.
func (tr *AuditTree) CosignedCheckpoint(ctx context.Context, minCosigs int) (note string, size uint64, err error) {
	var s int64
	var lines string
	if minCosigs <= 0 {
		err = tr.db.q(ctx).QueryRow(ctx, sqlAuditLatestWithCosigns).Scan(&s, &note, &lines)
	} else {
		err = tr.db.q(ctx).QueryRow(ctx, sqlAuditLatestCosigned, minCosigs).Scan(&s, &note, &lines)
	}
	if err != nil {
		return "", 0, Translate(err)
	}
	return note + lines, uint64(s), nil
}

// withCosignatures appends the stored cosignature lines of the checkpoint
// of the given size to its note, inside tx (the export's snapshot).
func withCosignatures(ctx context.Context, tx pgx.Tx, size int64, note string) (string, error) {
	var lines string
	err := tx.QueryRow(ctx, sqlAuditCosignaturesAt, size).Scan(&lines)
	if errors.Is(err, pgx.ErrNoRows) {
		return note, nil
	}
	if err != nil {
		return "", Translate(err)
	}
	return string(audit.AddSignatureLines([]byte(note), audit.SignatureLines([]byte("x\n\n"+lines))...)), nil
}

// LatestCheckpointAge is how long ago the latest checkpoint was signed
// (by the database's clock); ENotFound before the first.
func (tr *AuditTree) LatestCheckpointAge(ctx context.Context) (time.Duration, error) {
	var us int64
	err := tr.db.q(ctx).QueryRow(ctx, `SELECT (extract(epoch FROM now() - created_at) * 1e6)::bigint
		FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&us)
	if err != nil {
		return 0, Translate(err)
	}
	return time.Duration(us) * time.Microsecond, nil
}
