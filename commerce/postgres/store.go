package postgres

import (
	"context"
	"sync"
	"time"

	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

// Store is the SQL of commerce's ports. It embeds the broker's handle, so
// that its statements join the broker's transactions (InTx, Q) and one
// value serves both the broker's ports and the shop's.
type Store struct {
	*bpg.DB

	// The group committers of inbox.go, made on first use.
	groupsOnce sync.Once
	groupsV    *groupCommits

	// spread is whether orders are distributed over a Citus cluster,
	// learnt on first use (see routedOrder).
	spreadOnce sync.Once
	spreadV    bool
}

var _ commerce.Store = (*Store)(nil)

// New returns the commerce store on db.
func New(db *bpg.DB) *Store { return &Store{DB: db} }

// spread reports whether the database is a Citus coordinator, asked once.
// If the question fails the answer is false: the statements by order id
// are then the plain ones, which are right on both engines, only slower
// on Citus.
func (db *Store) spread(ctx context.Context) bool {
	db.spreadOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&db.spreadV)
		if err != nil {
			db.spreadV = false
		}
	})
	return db.spreadV
}

// Translate maps database errors to broker errors (see bpg.Translate).
func Translate(err error) error { return bpg.Translate(err) }

var _ commerce.ShardKeys = (*Store)(nil)

// sqlShardKeys asks the coordinator's metadata which shard of subjects
// holds each shopper (no distributed table is read: one local call each).
const sqlShardKeys = `SELECT s, get_shard_id_for_distribution_column('subjects', s)
	FROM unnest($1::text[]) AS s`

// ShardKeys returns each shopper's shard of subjects on Citus (the
// shopper tables are co-located with it, so the key holds for all of
// them), and nil on one PostgreSQL.
func (db *Store) ShardKeys(ctx context.Context, subjects []string) (map[string]int64, error) {
	if !db.spread(ctx) {
		return nil, nil
	}
	rows, err := db.Pool.Query(ctx, sqlShardKeys, subjects)
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
