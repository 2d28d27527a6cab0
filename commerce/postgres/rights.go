package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/commerce"
)

// Rights is the shop's side of erasure (the shopper's rows, and the
// notice to other processes) and of the shopper's audit trail.
type Rights struct{ *base }

var _ commerce.RightsStore = (*Rights)(nil)

const (
	sqlEraseSubject = `UPDATE subjects SET wa_index = NULL, sealed_identity = NULL, erased_at = now(),
		consent_notice = false, consent_marketing = false, consent_analytics = false WHERE id = $1`
	sqlEraseConsents = `INSERT INTO consent_artefacts (id, subject_id, notice_sha256, lang, purposes, status, at,
		evidence, method, reason)
		SELECT 'cna_e' || md5(id || clock_timestamp()::text), id, notice_sha256, lang,
			ARRAY['delivery', 'order_fulfilment', 'payment', 'support']
			|| CASE WHEN consent_marketing THEN ARRAY['marketing'] ELSE ARRAY[]::text[] END
			|| CASE WHEN consent_analytics THEN ARRAY['analytics'] ELSE ARRAY[]::text[] END,
			'withdrawn', now(), '', 'erasure', 'erasure'
		FROM subjects WHERE id = $1 AND consent_notice AND erased_at IS NULL`
	sqlEraseOrders = `UPDATE orders SET sealed = NULL, erased_at = now(),
		status = CASE WHEN status IN ('delivered', 'cancelled') THEN status ELSE 'cancelled' END
		WHERE subject_id = $1 AND erased_at IS NULL
		RETURNING id, status`
	sqlEraseOutbox = `UPDATE outbox SET status = 'dead', sealed = NULL, last_error = 'subject erased'
		WHERE subject_id = $1 AND status = 'pending' AND NOT vault_sealed`
)

// EraseSubjectRows blanks or deletes every row holding the shopper's data.
// Sealed rows that remain (sent outbox items) are unreadable once the key
// is shredded; those with plaintext-derived values are removed here.
func (db *Rights) EraseSubjectRows(ctx context.Context, subject string) ([]string, error) {
	q := db.q(ctx)
	// The consents end with the erasure: their record says so (the
	// artefacts hold no personal data and stay as proof of consent).
	if _, err := q.Exec(ctx, sqlEraseConsents, subject); err != nil {
		return nil, Translate(err)
	}
	if _, err := q.Exec(ctx, sqlEraseSubject, subject); err != nil {
		return nil, Translate(err)
	}
	// A minor's parent's number (blind index and sealed copy) goes with them.
	if _, err := q.Exec(ctx, `DELETE FROM guardians WHERE subject_id = $1`, subject); err != nil {
		return nil, Translate(err)
	}
	rows, err := q.Query(ctx, sqlEraseOrders, subject)
	if err != nil {
		return nil, Translate(err)
	}
	var cancelled []string
	var id, status string
	_, err = pgx.ForEachRow(rows, []any{&id, &status}, func() error {
		if status == "cancelled" {
			cancelled = append(cancelled, id)
		}
		return nil
	})
	if err != nil {
		return nil, Translate(err)
	}
	for _, stmt := range []string{
		`DELETE FROM sessions WHERE subject_id = $1`,
		`DELETE FROM inbox WHERE subject_id = $1`,
		sqlEraseOutbox,
		// Sent and dead items keep no payload, no provider id (its hash)
		// and no subject id; vault-sealed ones (a cancellation to the
		// retailer) keep only their payload, which names nobody.
		`UPDATE outbox SET sealed = CASE WHEN vault_sealed THEN sealed END, provider_id = NULL, subject_id = NULL
			WHERE subject_id = $1`,
		`DELETE FROM partner_refs WHERE subject_id = $1`,
		// Every identifier's index: phone, BSUID, parent BSUID.
		`DELETE FROM subject_identifiers WHERE subject_id = $1`,
		`DELETE FROM message_status WHERE subject_id = $1`,
		// The nominee's blind index is the nominee's data too; a ticket's
		// text is unreadable once the key is gone, and is dropped as well.
		`DELETE FROM nominations WHERE subject_id = $1`,
		`UPDATE grievances SET sealed = NULL WHERE subject_id = $1`,
	} {
		if _, err := q.Exec(ctx, stmt, subject); err != nil {
			return nil, Translate(err)
		}
	}
	return cancelled, nil
}

// SubjectAudit returns the integrated audit entries about a pseudonym.
func (db *Rights) SubjectAudit(ctx context.Context, pseudonym string, limit int) ([]audit.Entry, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT leaf FROM audit_entries WHERE subject = $1 ORDER BY idx LIMIT $2`,
		pseudonym, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Entry, error) {
		var b []byte
		var e audit.Entry
		if err := r.Scan(&b); err != nil {
			return e, err
		}
		return e, json.Unmarshal(b, &e)
	})
	return out, Translate(err)
}

// Erasure notifications tell every process to drop cached keys.
const erasureChannel = "sieve_erasure"

// NotifyErasure announces an erasure at commit.
func (db *Rights) NotifyErasure(ctx context.Context, subject string) error {
	_, err := db.q(ctx).Exec(ctx, `SELECT pg_notify($1, $2)`, erasureChannel, subject)
	return Translate(err)
}

// Listen calls fn with the payload of each notification on channel until
// ctx ends, reconnecting after errors. Notifications are hints: missed ones
// (while disconnected) are covered by the callers' cache TTLs.
func (db *Rights) Listen(ctx context.Context, channel string, fn func(payload string)) {
	for ctx.Err() == nil {
		err := func() error {
			conn, err := db.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
				return err
			}
			for {
				n, err := conn.Conn().WaitForNotification(ctx)
				if err != nil {
					conn.Conn().PgConn().Close(context.Background()) //nolint:errcheck // never reuse a listening conn
					return err
				}
				fn(n.Payload)
			}
		}()
		if err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// ListenErasures calls fn for every erasure announced by any process.
func (db *Rights) ListenErasures(ctx context.Context, fn func(subject string)) {
	db.Listen(ctx, erasureChannel, fn)
}

// ExpiredSubjects lists shoppers not erased whose last interaction is
// before the cutoff.
func (db *Retention) ExpiredSubjects(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT id FROM subjects WHERE erased_at IS NULL AND last_interaction_at < $1
		ORDER BY last_interaction_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, Translate(err)
}
