package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Turns reads and writes the workers' turns of groups of shoppers, and
// tells shoppers' shards apart on Citus (ShardKeys).
type Turns struct{ *base }

var _ commerce.TurnStore = (*Turns)(nil)

// SQL of the worker's turns: each statement serves a whole group of
// shoppers, so a group costs the same number of statements as one shopper.
const (
	sqlTurnLocks = `SELECT pg_try_advisory_xact_lock(hashtextextended(s, 7))
		FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n) ORDER BY n`
	// Each shopper's first $2 pending events: a window partitioned by the
	// shopper rather than a LATERAL … LIMIT, which Citus cannot push down
	// to the shards.
	sqlTurnInbox = `SELECT id, dedup_key, subject_id, kind, store, sealed, received_at, attempts
		FROM (SELECT i.*, row_number() OVER (PARTITION BY subject_id ORDER BY id) AS n
			FROM inbox i WHERE subject_id = ANY($1::text[]) AND processed_at IS NULL) i
		WHERE n <= $2 ORDER BY id`
	sqlTurnSubjects = `SELECT ` + subjectCols + ` FROM subjects WHERE id = ANY($1)`
	sqlTurnSessions = `SELECT subject_id, sealed FROM sessions WHERE subject_id = ANY($1)`

	sqlTurnLastInbound = `UPDATE subjects s SET last_inbound_at = greatest(s.last_inbound_at, t.at),
		last_interaction_at = greatest(s.last_interaction_at, t.at)
		FROM unnest($1::text[], $2::timestamptz[]) AS t(id, at) WHERE s.id = t.id`
	// The shoppers as well as the ids: on Citus the inbox is distributed by
	// the shopper, and a group's shoppers name its shards.
	// Only rows still pending: SaveTurns checks that it marked every one,
	// else the turn read events another turn had already processed (on
	// Citus, whose commit on a worker that failed mid-way shows only once
	// its prepared transaction is recovered), and must not commit again.
	sqlTurnDone = `UPDATE inbox SET processed_at = now(), attempts = attempts + 1, last_error = NULL
		WHERE subject_id = ANY($2) AND id = ANY($1) AND processed_at IS NULL`
	sqlTurnProcessed   = `SELECT count(*) FROM inbox WHERE subject_id = ANY($2) AND id = ANY($1) AND processed_at IS NOT NULL`
	sqlTurnSessionsPut = `INSERT INTO sessions (subject_id, store, state, sealed)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
		ON CONFLICT (subject_id) DO UPDATE SET store = EXCLUDED.store, state = EXCLUDED.state,
			sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at`
)

// LoadTurns takes each shopper's processing lock and reads the pending
// events, rows and sealed sessions of all of them in one pipelined round
// trip of four statements. A shopper whose lock is held elsewhere gets a
// TurnState with Locked false (its reads are discarded). subjects must be
// distinct.
func (db *Turns) LoadTurns(ctx context.Context, subjects []string, limit int) ([]commerce.TurnState, error) {
	out := make([]commerce.TurnState, len(subjects))
	at := make(map[string]int, len(subjects))
	for i, s := range subjects {
		at[s] = i
	}
	b := &pgx.Batch{}
	b.Queue(sqlTurnLocks, subjects).Query(func(rows pgx.Rows) error {
		i := 0
		for rows.Next() {
			if i < len(out) {
				if err := rows.Scan(&out[i].Locked); err != nil {
					return err
				}
			}
			i++
		}
		return rows.Err()
	})
	b.Queue(sqlTurnInbox, subjects, limit).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var it commerce.InboxItem
			if err := rows.Scan(&it.ID, &it.DedupKey, &it.Subject, &it.Kind, &it.Store, &it.Sealed, &it.Received, &it.Attempts); err != nil {
				return err
			}
			if i, ok := at[it.Subject]; ok {
				out[i].Items = append(out[i].Items, it)
			}
		}
		return rows.Err()
	})
	b.Queue(sqlTurnSubjects, subjects).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			s, err := scanSubject(rows)
			if err != nil {
				return err
			}
			if i, ok := at[s.ID]; ok {
				out[i].Subject, out[i].Found = s, true
			}
		}
		return rows.Err()
	})
	b.Queue(sqlTurnSessions, subjects).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var sealed []byte
			if err := rows.Scan(&id, &sealed); err != nil {
				return err
			}
			if i, ok := at[id]; ok {
				out[i].Session = sealed
			}
		}
		return rows.Err()
	})
	if err := db.q(ctx).SendBatch(ctx, b).Close(); err != nil {
		return nil, Translate(err)
	}
	for i := range out {
		if !out[i].Locked {
			out[i] = commerce.TurnState{}
		}
	}
	return out, nil
}

// SaveTurns writes the effects of several shoppers' turns in one
// pipelined round trip, a statement per table; each shopper's outbox items
// keep their order.
func (db *Turns) SaveTurns(ctx context.Context, ws []commerce.TurnWrite) error {
	var inSubs []string
	var inAt []time.Time
	var refs, kinds, subs, parts []string
	var vault []bool
	var sealed [][]byte
	var done []int64
	var doneSubs []string
	var sessSubs, sessStores, sessStates []string
	var sessSealed [][]byte
	for _, w := range ws {
		if !w.LastInbound.IsZero() {
			inSubs, inAt = append(inSubs, w.Subject), append(inAt, w.LastInbound)
		}
		for _, it := range w.Out {
			refs, kinds, subs, parts = append(refs, it.Ref), append(kinds, it.Kind), append(subs, it.Subject), append(parts, it.Partner)
			vault, sealed = append(vault, it.VaultSealed), append(sealed, it.Sealed)
		}
		done = append(done, w.Done...)
		if len(w.Done) > 0 {
			doneSubs = append(doneSubs, w.Subject)
		}
		if w.Session != nil {
			sessSubs, sessStores, sessStates = append(sessSubs, w.Subject), append(sessStores, w.Store), append(sessStates, w.State)
			sessSealed = append(sessSealed, w.Session)
		}
	}
	b := &pgx.Batch{}
	if len(inSubs) > 0 {
		b.Queue(sqlTurnLastInbound, inSubs, inAt)
	}
	if len(refs) > 0 {
		b.Queue(sqlEnqueueMany, refs, kinds, subs, parts, vault, sealed)
	}
	marked := int64(len(done))
	if len(done) > 0 {
		b.Queue(sqlTurnDone, done, doneSubs).Exec(func(tag pgconn.CommandTag) error {
			marked = tag.RowsAffected()
			return nil
		})
	}
	if len(sessSubs) > 0 {
		b.Queue(sqlTurnSessionsPut, sessSubs, sessStores, sessStates, sessSealed)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := db.q(ctx).SendBatch(ctx, b).Close(); err != nil {
		return Translate(err)
	}
	if marked == int64(len(done)) {
		return nil
	}
	// Fewer marked than read: the turn erased the shopper (and deleted
	// their events), or another turn processed some of them meanwhile,
	// whose effects must not be committed a second time.
	var processed int64
	if err := db.q(ctx).QueryRow(ctx, sqlTurnProcessed, done, doneSubs).Scan(&processed); err != nil {
		return Translate(err)
	}
	if other := processed - marked; other > 0 {
		// Transient: the next turn will not see them.
		return broker.Errorf(broker.EUnavailable, "%d of the turn's %d inbox events were processed meanwhile", other, len(done))
	}
	return nil
}

var _ commerce.ShardKeys = (*Turns)(nil)

// sqlShardKeys asks the coordinator's metadata which shard of subjects
// holds each shopper (no distributed table is read: one local call each).
const sqlShardKeys = `SELECT s, get_shard_id_for_distribution_column('subjects', s)
	FROM unnest($1::text[]) AS s`

// ShardKeys returns each shopper's shard of subjects on Citus (the
// shopper tables are co-located with it, so the key holds for all of
// them), and nil on one PostgreSQL.
func (db *Turns) ShardKeys(ctx context.Context, subjects []string) (map[string]int64, error) {
	if !db.spread(ctx) {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, sqlShardKeys, subjects)
	if err != nil {
		return nil, Translate(err)
	}
	defer rows.Close()
	keys := make(map[string]int64, len(subjects))
	for rows.Next() {
		var id string
		var shard int64
		if err := rows.Scan(&id, &shard); err != nil {
			return nil, Translate(err)
		}
		keys[id] = shard
	}
	return keys, Translate(rows.Err())
}
