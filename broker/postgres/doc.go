// Package postgres is the PostgreSQL adapter of the broker's ports: its
// SQL, its transactions and the base other stores join (Q, InTx,
// BeforeCommit, GroupCommit; commerce/postgres is one), and the
// translation of database errors into broker error codes (by SQLSTATE,
// never by message text).
//
// Transactions travel in the context: InTx starts one and passes a context
// carrying it, and every method called with that context joins it. That is
// how a release and its audit entry commit together.
package postgres
