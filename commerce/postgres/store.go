package postgres

import (
	"sync"

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
}

var _ commerce.Store = (*Store)(nil)

// New returns the commerce store on db.
func New(db *bpg.DB) *Store { return &Store{DB: db} }

// Translate maps database errors to broker errors (see bpg.Translate).
func Translate(err error) error { return bpg.Translate(err) }
