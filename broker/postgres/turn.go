package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

var _ commerce.TurnStore = (*DB)(nil)

// LoadTurn takes the shopper's processing lock and reads its pending
// events, its row and its sealed session in one pipelined round trip. When
// the lock is held elsewhere the reads are discarded.
func (db *DB) LoadTurn(ctx context.Context, subject string, limit int) (commerce.TurnState, error) {
	var st commerce.TurnState
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7))`, subject).QueryRow(func(r pgx.Row) error {
		return r.Scan(&st.Locked)
	})
	b.Queue(`SELECT id, dedup_key, subject_id, kind, store, sealed, received_at, attempts
		FROM inbox WHERE subject_id = $1 AND processed_at IS NULL ORDER BY id LIMIT $2`, subject, limit).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var it commerce.InboxItem
			if err := rows.Scan(&it.ID, &it.DedupKey, &it.Subject, &it.Kind, &it.Store, &it.Sealed, &it.Received, &it.Attempts); err != nil {
				return err
			}
			st.Items = append(st.Items, it)
		}
		return rows.Err()
	})
	b.Queue(sqlSubjectByID, subject).QueryRow(func(r pgx.Row) error {
		s, err := scanSubject(r)
		if broker.IsNotFound(err) {
			return nil
		}
		st.Subject, st.Found = s, err == nil
		return err
	})
	b.Queue(`SELECT sealed FROM sessions WHERE subject_id = $1`, subject).QueryRow(func(r pgx.Row) error {
		err := r.Scan(&st.Session)
		if err == pgx.ErrNoRows {
			return nil
		}
		return err
	})
	if err := db.q(ctx).SendBatch(ctx, b).Close(); err != nil {
		return commerce.TurnState{}, Translate(err)
	}
	if !st.Locked {
		return commerce.TurnState{}, nil
	}
	return st, nil
}

// SaveTurn writes a turn's effects in one pipelined round trip.
func (db *DB) SaveTurn(ctx context.Context, w commerce.TurnWrite) error {
	b := &pgx.Batch{}
	if !w.LastInbound.IsZero() {
		b.Queue(`UPDATE subjects SET last_inbound_at = greatest(last_inbound_at, $2),
			last_interaction_at = greatest(last_interaction_at, $2) WHERE id = $1`, w.Subject, w.LastInbound)
	}
	if n := len(w.Out); n > 0 {
		refs, kinds, subs, parts := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		vault := make([]bool, n)
		sealed := make([][]byte, n)
		for i, it := range w.Out {
			refs[i], kinds[i], subs[i], parts[i], vault[i], sealed[i] = it.Ref, it.Kind, it.Subject, it.Partner, it.VaultSealed, it.Sealed
		}
		b.Queue(sqlEnqueueMany, refs, kinds, subs, parts, vault, sealed)
	}
	if len(w.Done) > 0 {
		b.Queue(`UPDATE inbox SET processed_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1)`, w.Done)
	}
	if w.Session != nil {
		b.Queue(sqlPutSession, w.Subject, w.Store, w.State, w.Session)
	}
	if b.Len() == 0 {
		return nil
	}
	return Translate(db.q(ctx).SendBatch(ctx, b).Close())
}
