package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

// Stores are commerce's ports on one database: one narrow store per job,
// each the SQL of the commerce port that consumes it, all sharing one
// base (the broker's handle and what is learnt of the database). It has
// one method, Ports, that hands commerce.New every store at once; any other
// consumer takes the store it needs, a field.
type Stores struct {
	// DB is the broker's handle the stores run on: its InTx opens the
	// transactions their statements join, and it serves the broker's own
	// ports.
	DB *bpg.DB

	Subjects  *Subjects
	Catalog   *Catalog
	Inbox     *Inbox
	Turns     *Turns
	Orders    *Orders
	Outbox    *Outbox
	Market    *Market
	Consents  *Consents
	Notices   *Notices
	Holds     *Holds
	Rights    *Rights
	Retention *Retention
	Warnings  *Warnings
	Desk      *Desk
	Breaches  *Breaches
	Nominees  *Nominees
}

// New returns the commerce stores on db.
func New(db *bpg.DB) *Stores {
	b := &base{pg: db, pool: db.Pool}
	return &Stores{
		DB:        db,
		Subjects:  &Subjects{base: b},
		Catalog:   &Catalog{base: b},
		Inbox:     &Inbox{base: b},
		Turns:     &Turns{base: b},
		Orders:    &Orders{base: b},
		Outbox:    &Outbox{base: b},
		Market:    &Market{base: b},
		Consents:  &Consents{base: b},
		Notices:   &Notices{base: b},
		Holds:     &Holds{base: b},
		Rights:    &Rights{base: b},
		Retention: &Retention{base: b},
		Warnings:  &Warnings{base: b},
		Desk:      &Desk{base: b},
		Breaches:  &Breaches{base: b},
		Nominees:  &Nominees{base: b},
	}
}

// Ports are the stores as commerce.New takes them: the service's ports
// and its desks', the broker's handle opening their transactions.
func (s *Stores) Ports() commerce.Stores {
	return commerce.Stores{
		Ports: commerce.Ports{Tx: s.DB, Catalog: s.Catalog, Stock: s.Catalog, Subjects: s.Subjects, Inbox: s.Inbox,
			Turns: s.Turns, Orders: s.Orders, Outbox: s.Outbox, Offers: s.Market, Consents: s.Consents},
		Notices: s.Notices, Holds: s.Holds, Rights: s.Rights, Desk: s.Desk, Nominees: s.Nominees,
		Breaches: s.Breaches, Warnings: s.Warnings, Retention: s.Retention,
	}
}

// base is what every store of this package shares. It holds the broker's
// handle rather than embedding it, so that a store's methods are its own
// and the few below: every statement runs on q(ctx), so shop writes join
// the broker's transactions (InTx) and land in one COMMIT with the audit
// entries that record them.
type base struct {
	pg   *bpg.DB
	pool *pgxpool.Pool // for statements that must not join a transaction

	// spread is whether orders are distributed over a Citus cluster,
	// learnt on first use (see routeOrder).
	spreadOnce sync.Once
	spreadV    bool
}

// InTx runs fn in a transaction that the stores' statements join (see
// bpg.DB.InTx).
func (db *base) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return db.pg.InTx(ctx, fn)
}

// q is where a statement runs: the transaction of ctx, if any, else the pool.
func (db *base) q(ctx context.Context) bpg.Querier { return db.pg.Q(ctx) }

// exec1 runs a statement that must change a row: ENotFound when it
// changed none (see bpg.DB.Exec1).
func (db *base) exec1(ctx context.Context, sql string, args ...any) error {
	return db.pg.Exec1(ctx, sql, args...)
}

// spread reports whether the database is a Citus coordinator, asked once.
// If the question fails the answer is false: the statements by order id
// are then the plain ones, which are right on both engines, only slower
// on Citus.
func (db *base) spread(ctx context.Context) bool {
	db.spreadOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&db.spreadV)
		if err != nil {
			db.spreadV = false
		}
	})
	return db.spreadV
}

// Translate maps database errors to broker errors (see bpg.Translate).
func Translate(err error) error { return bpg.Translate(err) }
