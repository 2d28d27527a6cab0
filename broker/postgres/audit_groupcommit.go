package postgres

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// auditGroupCommitter batches the appends of concurrent callers into one
// COPY and one COMMIT (GroupCommit): up to auditMaxFlushers overlap one
// batch's COMMIT (fsync) with the next COPY. Each request's result is its
// own error: a duplicate decision id fails only its caller.
type auditGroupCommitter = GroupCommit[auditAppendReq, error]

type auditAppendReq struct {
	decisionID string
	leaf       []byte
}

const (
	auditMaxFlushers   = 3
	auditMaxGroupBatch = 4096
	auditFlushTimeout  = 30 * time.Second
)

func (lg *AuditLog) newAuditGroupCommitter(st *auditState) *auditGroupCommitter {
	return &auditGroupCommitter{
		MaxFlushers: auditMaxFlushers, MaxBatch: auditMaxGroupBatch,
		Size: func(auditAppendReq) int { return 1 },
		Write: func(batch []auditAppendReq) ([]error, error) {
			errs := lg.writeAuditPending(batch)
			st.signal()
			return errs, nil
		},
		// Already being written: its outcome decides (bounded by
		// auditFlushTimeout in writeAuditPending).
	}
}

func (lg *AuditLog) appendAuditGrouped(ctx context.Context, req auditAppendReq) error {
	res, err := lg.st.gc.Do(ctx, req, "audit append")
	if err != nil {
		return err
	}
	return res
}

// DrainAudit waits until every entry handed to the group committer has been
// written (or failed) and no flusher is running, or ctx is done. The
// committer keeps no goroutine when idle, so there is nothing to stop:
// call this in an ordered shutdown after the last Append and before
// closing the pool.
func (lg *AuditLog) DrainAudit(ctx context.Context) error {
	return lg.st.gc.Drain(ctx)
}

// writeAuditPending writes a batch in one COPY (one transaction) and
// returns each request's outcome. When a duplicate decision id fails the
// batch, the rows are written one by one so that only the duplicate's
// caller gets the error.
func (lg *AuditLog) writeAuditPending(batch []auditAppendReq) []error {
	ctx, cancel := context.WithTimeout(context.Background(), auditFlushTimeout)
	defer cancel()
	buf := binCopyHeader(make([]byte, 0, 64+len(batch)*400))
	for _, r := range batch {
		buf = binCopyTuple(buf, 2)
		buf = binCopyField(buf, []byte(r.decisionID))
		buf = binCopyField(buf, r.leaf)
	}
	buf = binCopyTrailer(buf)
	err := lg.auditCopyIn(ctx, sqlAuditCopyPending, buf)
	errs := make([]error, len(batch))
	var pe *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pe) && pe.Code == "23505" {
		for i, r := range batch {
			_, err := lg.db.Pool.Exec(ctx, sqlAuditInsertPending, r.decisionID, r.leaf)
			errs[i] = translateAuditAppend(err)
		}
		return errs
	}
	err = translateAuditAppend(err)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// auditCopyIn runs COPY ... FROM STDIN with the binary data in buf, on the
// transaction in ctx or on a pooled connection (then it commits on its own).
func (lg *AuditLog) auditCopyIn(ctx context.Context, sql string, buf []byte) error {
	if tx, ok := TxFrom(ctx); ok {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
		return err
	}
	conn, err := lg.db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
	return err
}
