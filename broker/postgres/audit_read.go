package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// AuditTree is the audit log as a verifiable tree (SPEC §4, §6), read
// from a DB (a replica serves it as well as the primary): the signed
// checkpoints and the witness cosignatures stored for them, the tree's
// status, inclusion and consistency proofs, single entries, and the
// tlog-tiles tiles and entry bundles (tiles.go, witness.go). It is what
// the audit API, the dashboard and the witness cosigner read.
type AuditTree struct{ db *DB }

// AuditTree returns the audit log's tree on db.
func (db *DB) AuditTree() *AuditTree { return &AuditTree{db} }

// LatestCheckpoint returns the latest signed checkpoint note and its tree
// size; ENotFound before the first checkpoint.
func (tr *AuditTree) LatestCheckpoint(ctx context.Context) (note string, size uint64, err error) {
	var s int64
	if err := tr.db.q(ctx).QueryRow(ctx, sqlAuditLatestCheckpoint).Scan(&note, &s); err != nil {
		return "", 0, Translate(err)
	}
	return note, uint64(s), nil
}

// AuditStatus is the state of the log, for the dashboard and readiness.
type AuditStatus struct {
	Size           uint64     // entries in the tree
	Root           []byte     // its root
	CheckpointSize uint64     // entries covered by the latest checkpoint
	CheckpointAt   *time.Time // when it was signed; nil before the first
	Pending        int64      // appended, not yet integrated
	Rejected       int64      // pending entries the sequencer set aside
}

// AuditStatus returns the state of the log.
func (tr *AuditTree) AuditStatus(ctx context.Context) (AuditStatus, error) {
	var s AuditStatus
	var size, cpSize int64
	err := tr.db.q(ctx).QueryRow(ctx, sqlAuditStatus).Scan(&size, &s.Root, &cpSize, &s.CheckpointAt, &s.Pending, &s.Rejected)
	if err != nil {
		return AuditStatus{}, Translate(err)
	}
	s.Size = uint64(size)
	s.CheckpointSize = uint64(max(cpSize, 0))
	return s, nil
}

func (tr *AuditTree) auditTreeSize(ctx context.Context) (uint64, error) {
	var size int64
	if err := tr.db.q(ctx).QueryRow(ctx, sqlAuditTreeSize).Scan(&size); err != nil {
		return 0, Translate(err)
	}
	return uint64(size), nil
}

// InclusionProof returns the proof that entry index is in the tree of the
// given size (at most the current size). Bad ranges are EInvalid.
func (tr *AuditTree) InclusionProof(ctx context.Context, index, size uint64) (audit.InclusionProof, error) {
	cur, err := tr.auditTreeSize(ctx)
	if err != nil {
		return audit.InclusionProof{}, err
	}
	if size == 0 || index >= size || size > cur {
		return audit.InclusionProof{}, broker.Errorf(broker.EInvalid,
			"need index < size <= %d, got index %d and size %d", cur, index, size)
	}
	r := auditNodeReader{q: tr.db.q(ctx)}
	hashes, err := audit.BuildInclusion(ctx, r, index, size)
	if err != nil {
		return audit.InclusionProof{}, Translate(err)
	}
	leaf, err := r.ReadNodes(ctx, []compact.NodeID{compact.NewNodeID(0, index)})
	if err != nil {
		return audit.InclusionProof{}, Translate(err)
	}
	return audit.InclusionProof{Index: index, Size: size, LeafHash: leaf[0], Hashes: hashes}, nil
}

// ConsistencyProof returns the proof that the tree of size from is a prefix
// of the tree of size to (to at most the current size). Bad ranges are
// EInvalid.
func (tr *AuditTree) ConsistencyProof(ctx context.Context, from, to uint64) (audit.ConsistencyProof, error) {
	cur, err := tr.auditTreeSize(ctx)
	if err != nil {
		return audit.ConsistencyProof{}, err
	}
	if from > to || to > cur {
		return audit.ConsistencyProof{}, broker.Errorf(broker.EInvalid,
			"need from <= to <= %d, got from %d and to %d", cur, from, to)
	}
	hashes, err := audit.BuildConsistency(ctx, auditNodeReader{q: tr.db.q(ctx)}, from, to)
	if err != nil {
		return audit.ConsistencyProof{}, Translate(err)
	}
	return audit.ConsistencyProof{From: from, To: to, Hashes: hashes}, nil
}

// auditNodeReader reads node hashes for proofs: nodes at level 8 and up from
// audit_nodes, lower ones computed from the leaf hashes they cover (at most
// 255 per node), in one round trip.
type auditNodeReader struct{ q querier }

func (s auditNodeReader) ReadNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	var levels []int16
	var idxs []int64
	var begins, ends []int64
	for _, id := range ids {
		if id.Level >= auditNodeLevel {
			levels, idxs = append(levels, int16(id.Level)), append(idxs, int64(id.Index))
			continue
		}
		b, e := id.Coverage()
		begins, ends = append(begins, int64(b)), append(ends, int64(e))
	}
	stored := map[compact.NodeID][]byte{}
	leaves := map[uint64][]byte{}
	var q pgx.Batch
	if len(levels) > 0 {
		q.Queue(sqlAuditReadStoredNodes, levels, idxs).Query(func(rows pgx.Rows) error {
			var l int16
			var i int64
			var h []byte
			_, err := pgx.ForEachRow(rows, []any{&l, &i, &h}, func() error {
				stored[compact.NewNodeID(uint(l), uint64(i))] = slices.Clone(h)
				return nil
			})
			return err
		})
	}
	if len(begins) > 0 {
		q.Queue(sqlAuditReadLeafHashes, begins, ends).Query(func(rows pgx.Rows) error {
			var i int64
			var h []byte
			_, err := pgx.ForEachRow(rows, []any{&i, &h}, func() error {
				leaves[uint64(i)] = slices.Clone(h)
				return nil
			})
			return err
		})
	}
	if q.Len() > 0 {
		if err := s.q.SendBatch(ctx, &q).Close(); err != nil {
			return nil, err
		}
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		if id.Level >= auditNodeLevel {
			h, ok := stored[id]
			if !ok {
				return nil, fmt.Errorf("audit: stored node %d/%d missing", id.Level, id.Index)
			}
			out[i] = h
			continue
		}
		b, e := id.Coverage()
		level := make([][]byte, 0, e-b)
		for j := b; j < e; j++ {
			h, ok := leaves[j]
			if !ok {
				return nil, fmt.Errorf("audit: leaf hash %d missing", j)
			}
			level = append(level, h)
		}
		for len(level) > 1 {
			next := level[:0:0]
			for j := 0; j < len(level); j += 2 {
				next = append(next, audit.NodeHash(level[j], level[j+1]))
			}
			level = next
		}
		out[i] = level[0]
	}
	return out, nil
}

// AuditEntry returns the entry at index idx; ENotFound if there is none.
func (tr *AuditTree) AuditEntry(ctx context.Context, idx uint64) (audit.Entry, error) {
	return tr.auditEntryBy(ctx, sqlAuditEntryByIndex, int64(idx))
}

// AuditEntryByDecision returns the logged entry of a decision; ENotFound
// if it is not (or not yet) in the log.
func (tr *AuditTree) AuditEntryByDecision(ctx context.Context, decisionID string) (audit.Entry, error) {
	return tr.auditEntryBy(ctx, sqlAuditEntryByDecision, decisionID)
}

func (tr *AuditTree) auditEntryBy(ctx context.Context, sql string, arg any) (audit.Entry, error) {
	var leaf []byte
	if err := tr.db.q(ctx).QueryRow(ctx, sql, arg).Scan(&leaf); err != nil {
		return audit.Entry{}, Translate(err)
	}
	e, err := audit.ParseEntry(leaf)
	if err != nil {
		return audit.Entry{}, fmt.Errorf("stored audit leaf: %w", err)
	}
	return e, nil
}
