// Package postgres is the SQL of commerce's ports: catalog and stock,
// orders, offers, the inbox and outbox with their group commits, turns,
// consent artefacts, notices, holds, warnings, the grievance desk and the
// breach workbench, and the shop's side of erasure and retention.
//
// New returns Stores: one narrow store per commerce port (Subjects,
// Catalog, Inbox, Turns, Orders, Outbox, Market, Consents, Notices, Holds,
// Rights, Retention, Warnings, Desk, Breaches, Nominees), as openfga
// composes its datastore from narrow backends. They share one base that
// holds the broker's *postgres.DB and runs every statement on its Q(ctx),
// so shop writes join the broker's transactions (InTx) and land
// in one COMMIT with the audit entries that record them. Stock reserved
// inside a transaction is taken just before COMMIT through the broker's
// BeforeCommit hook, so hot rows stay locked for the end of a turn only.
//
// Some of what lives here is broker vocabulary still typed in commerce
// (subjects, consent, partner references, rights); it moves beneath
// broker/postgres when its types move into broker.
package postgres
