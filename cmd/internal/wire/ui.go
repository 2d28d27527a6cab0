package wire

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce/httpapi/ui"
	"github.com/sieve-broker/sieve/policies"
)

// UI returns the option that mounts the compliance officer's dashboard at
// /ui and lets officers' sessions call the JSON compliance API.
func (s *System) UI() func(*httpapi.Deps) {
	return func(d *httpapi.Deps) {
		deps := s.uiDeps()
		var reg *prometheus.Registry
		if d.Metrics != nil {
			reg = d.Metrics.Registry
		}
		s.withTrust(&deps, reg)
		u := ui.New(deps)
		s.auditUI = u
		d.UI = u.Register
		d.Officers = u
	}
}

// uiDeps adapts the system's stores to what the dashboard consumes.
func (s *System) uiDeps() ui.Deps {
	return ui.Deps{
		Officers:       s.DB.Officers(),
		Passwords:      argonPasswords{},
		Audit:          uiAudit{db: s.ReadDB(), rec: s.Releaser.Recorder()},
		CheckpointKeys: s.CheckpointKeys,
		Rights:         s.Rights,
		Desk:           s.Desk,
		Breaches:       s.Breaches,
		Nominees:       s.Nominees,
		Partners:       s.DB.Partners(),
		Policy:         func() policies.View { return s.Policy.Data().View(s.Policy.Revision()) },
		Processing:     (&Reports{}).With(s).PolicyRecord,
		Notices:        s.Notices.Open,
		Holds:          s.Holds.List,
		Warnings:       s.Warnings.List,
		ReleaseHeld:    s.Holds.ReleaseHeld,
		Log:            s.Log,
		SecureCookies:  strings.HasPrefix(s.Config.Server.Issuer, "https://"),
		StoreName:      s.Config.WhatsApp.StoreName,
		Offers:         s.Stores.Market.RecentOffers,
	}
}

// argonPasswords checks officers' passwords with the same argon2id
// parameters as partners' client secrets.
type argonPasswords struct{}

// Hash implements ui.Passwords.
func (argonPasswords) Hash(pw string) (string, error) { return token.HashSecret(pw) }

// Check implements ui.Passwords.
func (argonPasswords) Check(hash, pw string) bool { return token.CheckSecret(hash, pw) }

// uiAudit adapts the PostgreSQL audit log to ui.AuditLog. Reads may go to
// a streaming replica (db); the officer's own entries go to the primary.
type uiAudit struct {
	db  *postgres.DB
	rec *broker.Recorder
}

var _ ui.AuditLog = uiAudit{}

// Entries implements ui.AuditLog.
func (a uiAudit) Entries(ctx context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error) {
	return a.db.AuditReports().AuditEntries(ctx, f, cursor, limit)
}

// Entry implements ui.AuditLog.
func (a uiAudit) Entry(ctx context.Context, index uint64) (audit.Entry, error) {
	return a.db.AuditTree().AuditEntry(ctx, index)
}

// Checkpoint implements ui.AuditLog.
func (a uiAudit) Checkpoint(ctx context.Context) (string, error) {
	note, _, err := a.db.AuditTree().LatestCheckpoint(ctx)
	return note, err
}

// Inclusion implements ui.AuditLog.
func (a uiAudit) Inclusion(ctx context.Context, index, size uint64) (audit.InclusionProof, error) {
	return a.db.AuditTree().InclusionProof(ctx, index, size)
}

// Consistency implements ui.AuditLog.
func (a uiAudit) Consistency(ctx context.Context, from, to uint64) (audit.ConsistencyProof, error) {
	return a.db.AuditTree().ConsistencyProof(ctx, from, to)
}

// Counts implements ui.AuditLog.
func (a uiAudit) Counts(ctx context.Context, from, to time.Time, bucket time.Duration) ([]broker.AuditCount, error) {
	return a.db.AuditReports().AuditCounts(ctx, from, to, bucket)
}

// Flows implements ui.AuditLog.
func (a uiAudit) Flows(ctx context.Context) ([]broker.ReleasedCell, error) {
	return a.db.AuditReports().ReleasedMatrix(ctx)
}

// ExportCSV implements ui.AuditLog.
func (a uiAudit) ExportCSV(ctx context.Context, w io.Writer, f broker.AuditFilter) error {
	return a.db.AuditReports().ExportAudit(ctx, w, f, postgres.ExportCSV)
}

// Record implements ui.AuditLog.
func (a uiAudit) Record(ctx context.Context, ev broker.Event) error {
	_, err := a.rec.Record(ctx, ev)
	return err
}
