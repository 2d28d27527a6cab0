package broker

// The questions asked of the audit log and their answers, shared by the
// store (broker/postgres), the compliance API and the dashboard.

import "time"

// AuditFilter selects entries. Empty fields do not filter; From is
// inclusive and To exclusive.
type AuditFilter struct {
	Subject string // the subject's audit pseudonym ("sub_…")
	Actor   string // e.g. "retailer:<client id>"
	Purpose string
	Outcome string
	Action  string
	From    time.Time
	To      time.Time
}

// IsZero reports whether f selects every entry.
func (f AuditFilter) IsZero() bool { return f == AuditFilter{} }

// Fields returns the filter as name → value, for export headers.
func (f AuditFilter) Fields() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{"subject": f.Subject, "actor": f.Actor, "purpose": f.Purpose,
		"outcome": f.Outcome, "action": f.Action} {
		if v != "" {
			m[k] = v
		}
	}
	if !f.From.IsZero() {
		m["from"] = f.From.UTC().Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		m["to"] = f.To.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// AuditCount is the number of entries of one actor, purpose and outcome in
// one time bucket.
type AuditCount struct {
	Bucket  time.Time // start of the bucket
	Actor   string
	Purpose string
	Outcome string // audit.OutcomeReleased, OutcomeDenied, ...
	Count   int64
}

// ReleasedCell is one cell of the release matrix: how often a field was
// released to an actor for a purpose, and when first and last.
type ReleasedCell struct {
	Actor   string
	Field   string
	Purpose string
	Count   int64
	First   time.Time
	Last    time.Time
}
