package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/commerce"
)

// The retention sweeper's statements (commerce.Retention). Each purge
// deletes one batch by ctid, so that it needs no knowledge of the table's
// key, and skips rows another transaction holds (a sender's lease, a turn).

// Retention is the retention sweeper's store: expired shoppers and the
// purge of old sessions, outbox items, statuses and inbox rows.
type Retention struct{ *base }

var _ commerce.RetentionStore = (*Retention)(nil)

const (
	sqlClaimExpiredSubject = `SELECT true FROM subjects
		WHERE id = $1 AND erased_at IS NULL AND last_interaction_at < $2
		FOR UPDATE`
	sqlPurgeSessions = `DELETE FROM sessions WHERE ctid IN (
		SELECT ctid FROM sessions WHERE updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`
	// Items still pending are work, not records: the sender owns them.
	sqlPurgeOutbox = `DELETE FROM outbox WHERE ctid IN (
		SELECT ctid FROM outbox WHERE status IN ('sent', 'dead') AND kind = $1
			AND COALESCE(sent_at, created_at) < $2
		LIMIT $3 FOR UPDATE SKIP LOCKED)`
	sqlPurgeMessageStatuses = `DELETE FROM message_status WHERE ctid IN (
		SELECT ctid FROM message_status WHERE updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`
	// processed_at < cutoff lets the inbox_processed index find the rows
	// (processing follows receipt, so it implies received_at < cutoff too).
	// By key and without SKIP LOCKED: on Citus the inbox is distributed,
	// and Citus neither locks rows nor knows ctid across shards. One process
	// sweeps (the retention lock); the condition is checked again on delete.
	sqlPurgeInbox = `DELETE FROM inbox WHERE processed_at < $1 AND received_at < $1 AND (subject_id, id) IN (
		SELECT subject_id, id FROM inbox WHERE processed_at < $1 AND received_at < $1 LIMIT $2)`
)

// ClaimExpiredSubject locks the shopper's row for the transaction in ctx and
// reports whether the shopper is still not erased and still expired.
func (db *Retention) ClaimExpiredSubject(ctx context.Context, subject string, before time.Time) (bool, error) {
	var ok bool
	err := db.q(ctx).QueryRow(ctx, sqlClaimExpiredSubject, subject, before).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return ok, Translate(err)
}

// PurgeSessions deletes up to limit conversation states untouched since
// before.
func (db *Retention) PurgeSessions(ctx context.Context, before time.Time, limit int) (int64, error) {
	return db.purge(ctx, sqlPurgeSessions, before, limit)
}

// PurgeOutbox deletes up to limit outbox items of kind that were sent, or
// given up on, before the cutoff.
func (db *Retention) PurgeOutbox(ctx context.Context, kind string, before time.Time, limit int) (int64, error) {
	tag, err := db.q(ctx).Exec(ctx, sqlPurgeOutbox, kind, before, limit)
	return tag.RowsAffected(), Translate(err)
}

// PurgeMessageStatuses deletes up to limit delivery statuses last updated
// before the cutoff.
func (db *Retention) PurgeMessageStatuses(ctx context.Context, before time.Time, limit int) (int64, error) {
	return db.purge(ctx, sqlPurgeMessageStatuses, before, limit)
}

// PurgeInbox deletes up to limit processed inbound notifications received
// before the cutoff.
func (db *Retention) PurgeInbox(ctx context.Context, before time.Time, limit int) (int64, error) {
	return db.purge(ctx, sqlPurgeInbox, before, limit)
}

func (db *Retention) purge(ctx context.Context, sql string, before time.Time, limit int) (int64, error) {
	tag, err := db.q(ctx).Exec(ctx, sql, before, limit)
	return tag.RowsAffected(), Translate(err)
}

// TryLock takes a lock shared by every process, without waiting (see
// bpg.DB.TryLock).
func (db *Retention) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	return db.pg.TryLock(ctx, name)
}
