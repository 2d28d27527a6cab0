// Package postgres is the PostgreSQL adapter of the broker's ports: its
// SQL, its transactions and the base other stores join (Q, InTx,
// BeforeCommit, GroupCommit; commerce/postgres is one), and the
// translation of database errors into broker error codes. A server error
// is translated by its SQLSTATE, and Citus's internal_error (XX000) by the
// fixed texts Citus gives a relayed unique violation or a lost worker. Lost connections carry no SQLSTATE:
// they are recognised by pgconn's error types and, last, by the few fixed
// texts pgx and the network stack use for them ("closed pool", "conn
// closed", "broken pipe", …), which never contain data.
//
// Transactions travel in the context: InTx starts one and passes a context
// carrying it, and every method called with that context joins it. That is
// how a release and its audit entry commit together.
//
// DB is that base. Each job of the broker's is a narrow type on it,
// implementing only its ports: AuditLog (DB.Audit) appends and sequences
// the audit log, AuditTree and AuditReports read it, Partners is the
// partner registry, SubjectKeys the wrapped data keys and Officers the
// dashboard's officers and sessions. A consumer takes only the type whose
// port it uses.
package postgres
