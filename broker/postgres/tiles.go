package postgres

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// C2SP tlog-tiles over the stored tree (SPEC §4), height 8: a tile at level
// L and index N holds the hashes of the complete subtrees of height 8L
// numbered N·256 … N·256+W-1. Level 0 is the leaf hashes of audit_entries;
// higher levels are the nodes audit_nodes keeps anyway (every node at level
// 8 and up), so tiles need no second copy of the log. Hashes of complete
// subtrees never change, so any tile whose nodes all exist is served.

// TileHeight is the tlog-tiles tile height.
const TileHeight = 8

const (
	sqlAuditTileLeaves = `SELECT leaf_hash FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`
	sqlAuditTileNodes  = `SELECT hash FROM audit_nodes WHERE level = $3 AND idx >= $1 AND idx < $2 ORDER BY idx`
	sqlAuditTileLeafs  = `SELECT leaf FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`
)

// AuditTile returns the tile at level and index with width hashes (256
// for a full tile), or ENotFound when the tree does not have them all yet.
func (tr *AuditTree) AuditTile(ctx context.Context, level int, index uint64, width int) ([]byte, error) {
	if level < 0 || level > 7 || width < 1 || width > 1<<TileHeight || index > (1<<62)>>TileHeight {
		return nil, broker.Errorf(broker.EInvalid, "no such tile")
	}
	begin := index << TileHeight
	return tr.collectTile(ctx, level, begin, begin+uint64(width), make([]byte, 0, width*audit.HashSize))
}

// collectTile reads the hashes of a tile into out.
func (tr *AuditTree) collectTile(ctx context.Context, level int, begin, end uint64, out []byte) ([]byte, error) {
	var rows pgx.Rows
	var err error
	if level == 0 {
		rows, err = tr.db.q(ctx).Query(ctx, sqlAuditTileLeaves, int64(begin), int64(end))
	} else {
		rows, err = tr.db.q(ctx).Query(ctx, sqlAuditTileNodes, int64(begin), int64(end), int16(level*TileHeight))
	}
	if err != nil {
		return nil, Translate(err)
	}
	var h []byte
	n := 0
	_, err = pgx.ForEachRow(rows, []any{&h}, func() error {
		if len(h) != audit.HashSize {
			return fmt.Errorf("audit tile: stored hash of %d bytes", len(h))
		}
		out = append(out, h...)
		n++
		return nil
	})
	if err != nil {
		return nil, Translate(err)
	}
	if uint64(n) != end-begin {
		return nil, broker.Errorf(broker.ENotFound, "tile not in the tree yet")
	}
	return out, nil
}

// AuditEntryBundle returns the entry bundle at index with width entries
// (256 for a full bundle): each leaf as a big-endian uint16 length and the
// leaf's canonical bytes. ENotFound when the log does not hold them all.
func (tr *AuditTree) AuditEntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	if width < 1 || width > 1<<TileHeight || index > (1<<62)>>TileHeight {
		return nil, broker.Errorf(broker.EInvalid, "no such entry bundle")
	}
	begin := index << TileHeight
	end := begin + uint64(width)
	rows, err := tr.db.q(ctx).Query(ctx, sqlAuditTileLeafs, int64(begin), int64(end))
	if err != nil {
		return nil, Translate(err)
	}
	var out []byte
	var leaf []byte
	n := 0
	_, err = pgx.ForEachRow(rows, []any{&leaf}, func() error {
		if len(leaf) > 0xffff {
			return fmt.Errorf("audit entry bundle: entry %d has %d bytes, more than a bundle can frame", begin+uint64(n), len(leaf))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(leaf)))
		out = append(out, leaf...)
		n++
		return nil
	})
	if err != nil {
		return nil, Translate(err)
	}
	if uint64(n) != end-begin {
		return nil, broker.Errorf(broker.ENotFound, "entry bundle not in the log yet")
	}
	return out, nil
}
