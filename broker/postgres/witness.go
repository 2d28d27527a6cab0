package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
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
func (db *DB) AddCosignature(ctx context.Context, size uint64, witness, line string) error {
	_, err := db.q(ctx).Exec(ctx, sqlAuditAddCosignature, int64(size), witness, line)
	return Translate(err)
}

// WitnessCosignedSize returns the largest checkpoint size the witness
// cosigned (0 before its first cosignature).
func (db *DB) WitnessCosignedSize(ctx context.Context, witness string) (uint64, error) {
	var s int64
	if err := db.q(ctx).QueryRow(ctx, sqlAuditWitnessSize, witness).Scan(&s); err != nil {
		return 0, Translate(err)
	}
	return uint64(s), nil
}

// CosignedCheckpoint returns a checkpoint note with the cosignature lines
// stored for it appended. With minCosigs 0 it is the latest checkpoint,
// with whatever cosignatures it has (GET /v1/audit/checkpoint); otherwise
// the latest one with at least minCosigs stored lines (the caller checks
// them against its policy). ENotFound when there is none.
func (db *DB) CosignedCheckpoint(ctx context.Context, minCosigs int) (note string, size uint64, err error) {
	var s int64
	var lines string
	if minCosigs <= 0 {
		err = db.q(ctx).QueryRow(ctx, sqlAuditLatestWithCosigns).Scan(&s, &note, &lines)
	} else {
		err = db.q(ctx).QueryRow(ctx, sqlAuditLatestCosigned, minCosigs).Scan(&s, &note, &lines)
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
func (db *DB) LatestCheckpointAge(ctx context.Context) (time.Duration, error) {
	var us int64
	err := db.q(ctx).QueryRow(ctx, `SELECT (extract(epoch FROM now() - created_at) * 1e6)::bigint
		FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&us)
	if err != nil {
		return 0, Translate(err)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// CosignGrace is how long a fresh checkpoint may go without its witness
// quorum before VerifyAuditPolicy fails on it; until then the latest
// checkpoint that has the quorum stands in for it (witnesses cosign within
// moments, but a verify can start between the signature and the
// cosignature).
const CosignGrace = 15 * time.Second

// VerifyAuditPolicy is VerifyAuditKeys that also requires the witness
// quorum of p (SPEC §2 `audit verify --policy`): the latest checkpoint (or,
// within CosignGrace of its signing, the latest one with the quorum) must
// carry valid cosignatures of at least p's quorum, be signed by one of
// keys, and be a prefix of the verified tree. A log that was forked, or cut
// back and re-signed by the operator alone, has no such checkpoint. Errors
// of the quorum wrap audit.ErrNoQuorum.
func (db *DB) VerifyAuditPolicy(ctx context.Context, keys []audit.PublicKey, p *audit.Policy, progress func(done, total uint64)) (uint64, []byte, error) {
	note, cpSize, err := db.CosignedCheckpoint(ctx, 0)
	if broker.IsNotFound(err) {
		return 0, nil, fmt.Errorf("%w: no checkpoint published yet", audit.ErrNoQuorum)
	}
	if err != nil {
		return 0, nil, err
	}
	if qerr := p.CheckQuorum([]byte(note)); qerr != nil {
		age, aerr := db.LatestCheckpointAge(ctx)
		if aerr != nil || age > CosignGrace {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, qerr)
		}
		if note, cpSize, err = db.CosignedCheckpoint(ctx, max(p.Quorum, 1)); err != nil {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, qerr)
		}
		if err := p.CheckQuorum([]byte(note)); err != nil {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, err)
		}
	}
	cp, err := verifyNoteWithAnyKey([]byte(note), keys)
	if err != nil {
		return 0, nil, err
	}
	size, root, err := db.VerifyAuditKeys(ctx, keys, progress)
	if err != nil {
		return 0, nil, err
	}
	// The tree just verified must extend the cosigned checkpoint. The proof
	// comes from the database, but it is checked against the recomputed
	// root, so it cannot lie.
	if cp.Size > size {
		return 0, nil, fmt.Errorf("%w: the cosigned checkpoint has size %d, the log only %d", audit.ErrInconsistent, cp.Size, size)
	}
	proof, err := db.ConsistencyProof(ctx, cp.Size, size)
	if err != nil {
		return 0, nil, err
	}
	if err := proof.Verify(cp.Root, root); err != nil {
		return 0, nil, fmt.Errorf("the cosigned checkpoint of size %d: %w", cp.Size, err)
	}
	return size, root, nil
}

// verifyNoteWithAnyKey verifies a checkpoint note with the first of keys
// that signed it.
func verifyNoteWithAnyKey(note []byte, keys []audit.PublicKey) (audit.Checkpoint, error) {
	err := errors.New("no signing key to verify with")
	for _, k := range keys {
		var cp audit.Checkpoint
		if cp, err = k.VerifyCheckpoint(note); err == nil {
			return cp, nil
		}
	}
	return audit.Checkpoint{}, err
}
