package postgres

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Export formats of ExportAudit.
const (
	ExportJSONL = "jsonl"
	ExportCSV   = "csv"
)

// ExportAudit writes the log to w. Format "jsonl" without a filter is the
// verifiable export (audit.VerifyExport): a header with the latest signed
// checkpoint and up to 1024 earlier ones, then every leaf of that
// checkpoint's tree in index order. With a filter it is the filtered
// variant (audit.ExportFormatFiltered) of the matching leaves. Format
// "csv" is a table for people, with a header row, in index order. The
// export is read in one snapshot; before the first checkpoint a complete
// jsonl export is EConflict. A stored leaf that is not canonical, or missing
// from a complete export, stops the export with an error (run VerifyAudit
// to locate it): an export never papers over damage.
func (rp *AuditReports) ExportAudit(ctx context.Context, w io.Writer, f broker.AuditFilter, format string) error {
	if format != ExportJSONL && format != ExportCSV {
		return broker.Errorf(broker.EInvalid, "unknown export format %q (want jsonl or csv)", format)
	}
	tx, err := rp.db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	tctx := context.WithValue(ctx, txKey{}, tx)

	var note string
	var cpSize int64
	err = tx.QueryRow(ctx, sqlAuditLatestCheckpoint).Scan(&note, &cpSize)
	if errors.Is(err, pgx.ErrNoRows) {
		if format == ExportJSONL && f.IsZero() {
			return broker.Errorf(broker.EConflict, "no signed checkpoint yet: run `brokerctl audit checkpoint`")
		}
		cpSize = 0
	} else if err != nil {
		return Translate(err)
	}
	wh, err := rp.auditWhere(tctx, f)
	if err != nil {
		return err
	}
	if wh.empty {
		wh = &auditConds{conds: []string{"false"}}
	}
	if format == ExportJSONL {
		wh.add("idx < $%d", cpSize)
	}
	sql := "SELECT leaf FROM audit_entries" + wh.sql() + " ORDER BY idx"

	switch format {
	case ExportJSONL:
		h := audit.ExportHeader{Format: audit.ExportFormat, Checkpoint: note}
		if f.IsZero() {
			if h.History, err = auditExportHistory(ctx, tx, cpSize, note); err != nil {
				return err
			}
			// The witnesses' cosignatures travel with the checkpoint, so that
			// the offline verify can check the quorum (--policy).
			if h.Checkpoint, err = withCosignatures(ctx, tx, cpSize, note); err != nil {
				return err
			}
		} else {
			h.Format, h.Filter = audit.ExportFormatFiltered, f.Fields()
		}
		xw, err := audit.NewExportWriter(w, h)
		if err != nil {
			return err
		}
		err = streamAuditLeaves(ctx, tx, sql, wh.customPlan(), xw.WriteLeaf)
		if err != nil {
			return err
		}
		if f.IsZero() && xw.Count() != uint64(cpSize) {
			return fmt.Errorf("audit export: wrote %d entries for a checkpoint of %d", xw.Count(), cpSize)
		}
		return xw.Flush()
	default:
		cw := csv.NewWriter(w)
		cw.Write([]string{"index", "time", "decision_id", "actor", "action", "purpose", "subject", "resource",
			"released", "withheld", "outcome", "reason", "policy_revision"})
		err := streamAuditLeaves(ctx, tx, sql, wh.customPlan(), func(leaf []byte) error {
			e, err := audit.ParseEntry(leaf)
			if err != nil {
				return fmt.Errorf("stored audit leaf: %w", err)
			}
			return cw.Write([]string{strconv.FormatUint(e.Index, 10), e.Time.Format(time.RFC3339Nano),
				csvCell(e.DecisionID), csvCell(e.Actor), csvCell(e.Action), csvCell(e.Purpose), csvCell(e.Subject), csvCell(e.Resource),
				csvCell(strings.Join(e.Released, " ")), csvCell(strings.Join(e.Withheld, " ")), csvCell(e.Outcome),
				csvCell(e.Reason), csvCell(e.PolicyRevision)})
		})
		if err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	}
}

// csvCell defuses spreadsheet formulas: a cell starting with = + - @ or a
// control character is prefixed with a quote.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// auditExportHistory returns up to audit.MaxExportHistory signed checkpoints
// below size, spread evenly, for an export header, whichever log key signed
// them: the offline verify checks them with every key, current and retired
// (`--key` takes several), so history from before a rotation is checked too.
func auditExportHistory(ctx context.Context, tx pgx.Tx, size int64, _ string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT size FROM audit_checkpoints WHERE size < $1 AND size > 0 ORDER BY size`, size)
	if err != nil {
		return nil, Translate(err)
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, Translate(err)
	}
	us := make([]uint64, len(sizes))
	for i, s := range sizes {
		us[i] = uint64(s)
	}
	pick := audit.SelectHistory(us, audit.MaxExportHistory)
	picked := make([]int64, len(pick))
	for i, s := range pick {
		picked[i] = int64(s)
	}
	rows, err = tx.Query(ctx, `SELECT note FROM audit_checkpoints WHERE size = ANY($1) ORDER BY size`, picked)
	if err != nil {
		return nil, Translate(err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return notes, Translate(err)
}

// streamAuditLeaves runs sql (selecting one bytea) and calls fn with each value,
// valid only during the call.
func streamAuditLeaves(ctx context.Context, tx pgx.Tx, sql string, args []any, fn func([]byte) error) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return Translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.RawValues()[0]); err != nil {
			return err
		}
	}
	return Translate(rows.Err())
}
