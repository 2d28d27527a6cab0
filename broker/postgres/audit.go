package postgres

import (
	"github.com/sieve-broker/sieve/broker"
)

// The audit log store (SPEC §6). Writers append entries to audit_pending:
// inside the caller's transaction when ctx carries one, so the entry commits
// or rolls back with the release it records; otherwise through a group
// committer that writes the entries of concurrent callers in one COPY and
// acknowledges each caller only after it committed. A sequencer then moves
// pending entries into the Merkle log (audit_entries) in batches, each one
// transaction under a transaction-scoped advisory lock, so several brokerd
// processes on one database keep one total order and one tree, and a
// crashed process releases the lock with its connection.
//
// The store is split by job, into three types that share a DB and its
// transactions. AuditLog writes: audit_append.go and audit_groupcommit.go
// write pending entries, audit_copy.go is the binary COPY codec both
// directions use, audit_sequencer.go integrates and checkpoints. AuditTree
// serves the log as a verifiable tree (audit_read.go, tiles.go,
// witness.go). AuditReports answers officers and auditors
// (audit_filter.go, audit_reports.go, releases.go), re-checks the stored
// log (audit_verify.go) and writes it out (audit_export.go). This file
// holds what they share.

var _ broker.AuditAppender = (*AuditLog)(nil)

const (
	// auditLock serialises integration and checkpoint publication.
	auditLock = 0x5349455641554454 // "SIEVAUDT"

	// auditNodeLevel is the lowest level of the subtree hashes kept in
	// audit_nodes: a proof reads at most 2·2^8 leaf hashes plus those.
	auditNodeLevel = 8

	// auditPGEpochMicros is 2000-01-01T00:00:00Z in Unix microseconds, the
	// epoch of PostgreSQL's binary timestamps.
	auditPGEpochMicros = 946684800000000
)

// SQL of the audit store.
const (
	sqlAuditInsertPending = `INSERT INTO audit_pending (decision_id, entry) VALUES ($1, $2)`
	sqlAuditCopyPending   = `COPY audit_pending (decision_id, entry) FROM STDIN (FORMAT binary)`

	sqlAuditLockAudit = `SELECT pg_advisory_xact_lock($1)`
	sqlAuditTreeHead  = `SELECT size, root, state, coalesce(time_hwm, '0001-01-01T00:00:00Z'), max_lag_us, checkpoint_size,
		coalesce(checkpoint_at, '0001-01-01T00:00:00Z') FROM audit_tree WHERE id FOR UPDATE`
	sqlAuditClaimPending = `DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending WHERE id <= $2
		ORDER BY id LIMIT $1) RETURNING id, decision_id, entry`
	sqlAuditMaxPending        = `SELECT coalesce(max(id), 0) FROM audit_pending`
	sqlAuditCopyEntries       = `COPY audit_log (` + auditColumns + `) FROM STDIN (FORMAT binary)`
	sqlAuditExistingDecisions = `SELECT decision_id FROM audit_entries WHERE decision_id = ANY($1)`
	sqlAuditInsertNodes       = `INSERT INTO audit_nodes (level, idx, hash)
		SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`
	sqlAuditUpsertCounts = `INSERT INTO audit_counts (bucket, actor, purpose, outcome, n)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bigint[])
		ON CONFLICT (bucket, actor, purpose, outcome) DO UPDATE SET n = audit_counts.n + EXCLUDED.n`
	sqlAuditUpsertReleased = `INSERT INTO audit_released (actor, field, purpose, n, first_time, last_time)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
		ON CONFLICT (actor, field, purpose) DO UPDATE SET n = audit_released.n + EXCLUDED.n,
			first_time = least(audit_released.first_time, EXCLUDED.first_time),
			last_time = greatest(audit_released.last_time, EXCLUDED.last_time)`
	sqlAuditInsertRejected = `INSERT INTO audit_rejected (id, decision_id, entry, reason)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[])`
	sqlAuditUpdateTree = `UPDATE audit_tree SET size = $1, root = $2, state = $3, time_hwm = $4, max_lag_us = $5,
		updated_at = now() WHERE id`
	sqlAuditInsertCheckpoint = `INSERT INTO audit_checkpoints (size, root, note) VALUES ($1, $2, $3)
		ON CONFLICT (size) DO NOTHING`
	sqlAuditMarkCheckpoint = `UPDATE audit_tree SET checkpoint_size = $1, checkpoint_at = now() WHERE id`
	sqlAuditSequencerPoll  = `SELECT size, checkpoint_size, coalesce(checkpoint_at, '0001-01-01T00:00:00Z'),
		EXISTS (SELECT 1 FROM audit_pending) FROM audit_tree WHERE id`

	sqlAuditLatestCheckpoint = `SELECT note, size FROM audit_checkpoints ORDER BY size DESC LIMIT 1`
	sqlAuditTreeSize         = `SELECT size FROM audit_tree WHERE id`
	sqlAuditReadStoredNodes  = `SELECT n.level, n.idx, n.hash FROM audit_nodes n
		JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx`
	sqlAuditReadLeafHashes = `SELECT e.idx, e.leaf_hash FROM unnest($1::bigint[], $2::bigint[]) AS r(b, e)
		JOIN audit_entries e ON e.idx >= r.b AND e.idx < r.e`
	sqlAuditEntryByIndex    = `SELECT leaf FROM audit_entries WHERE idx = $1`
	sqlAuditEntryByDecision = `SELECT leaf FROM audit_entries WHERE decision_id = $1`
	sqlAuditHwmIndex        = `SELECT idx FROM audit_entries WHERE time_hwm >= $1 ORDER BY time_hwm, idx LIMIT 1`
	sqlAuditMaxLag          = `SELECT max_lag_us FROM audit_tree WHERE id`
	sqlAuditCountsHourly    = `SELECT date_bin($3::bigint * interval '1 microsecond', bucket, $1) AS b, actor, purpose,
		outcome, sum(n)::bigint FROM audit_counts WHERE bucket >= date_trunc('hour', $1::timestamptz) AND bucket < $2
		GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
	sqlAuditReleasedMatrix = `SELECT actor, field, purpose, n, first_time, last_time FROM audit_released
		ORDER BY actor, field, purpose`
	sqlAuditStatus = `SELECT t.size, t.root, t.checkpoint_size, t.checkpoint_at,
		(SELECT count(*) FROM audit_pending), (SELECT count(*) FROM audit_rejected) FROM audit_tree t WHERE t.id`

	// auditColumns are all columns of audit_log in table order: a scan that
	// returns them needs no projection. keys is the entry's filter fields
	// (audit.KeyNames) joined by audit.KeySeparator (migration 0008).
	auditColumns = `idx, time, time_hwm, leaf_hash, keys, leaf`
	nAuditCols   = 6
)

// AuditLog is the write side of the audit log on a DB: it owns appending
// entries (in the caller's transaction, or through the group committer),
// integrating them into the Merkle tree and publishing checkpoints (the
// sequencer). It keeps the per-handle state of the log, so there is one
// AuditLog per DB: get it with DB.Audit.
type AuditLog struct {
	db *DB
	st *auditState
}

// Audit returns the audit log's writer on db, made on first use: every
// call returns the same one, whose group committer batches the appends of
// every caller on db.
func (db *DB) Audit() *AuditLog {
	db.auditOnce.Do(func() {
		lg := &AuditLog{db: db, st: &auditState{wake: make(chan struct{}, 1)}}
		lg.st.gc = lg.newAuditGroupCommitter(lg.st)
		db.auditV = lg
	})
	return db.auditV
}

// auditState is what an AuditLog keeps between calls.
type auditState struct {
	gc   *auditGroupCommitter
	wake chan struct{} // signalled after each group commit, for in-process sequencers
}

func (st *auditState) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}
