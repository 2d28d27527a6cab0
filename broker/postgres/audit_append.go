package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Append durably appends e to the audit log (broker.AuditAppender). With a
// transaction in ctx the entry is written in it, so it commits or rolls back
// with the caller's work; otherwise it is group-committed with the entries
// of concurrent callers, and Append returns after the COMMIT. The entry is
// normalised and its Index ignored (the sequencer assigns it). A missing
// decision id is EInvalid, a decision id appended before is EConflict, and
// any database failure is an error: the caller must not release anything.
func (lg *AuditLog) Append(ctx context.Context, e audit.Entry) error {
	e.Index = 0
	leaf, err := e.ValidLeaf()
	if err != nil {
		return broker.Wrap(broker.EInvalid, err, "invalid audit entry")
	}
	if tx, ok := TxFrom(ctx); ok {
		_, err := tx.Exec(ctx, sqlAuditInsertPending, e.DecisionID, leaf)
		return translateAuditAppend(err)
	}
	return lg.appendAuditGrouped(ctx, auditAppendReq{decisionID: e.DecisionID, leaf: leaf})
}

func translateAuditAppend(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return broker.Wrap(broker.EConflict, err, "decision already audited")
	}
	if err := Translate(err); broker.ErrorCode(err) != broker.EInternal {
		return err
	}
	return broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
}
