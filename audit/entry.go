package audit

import (
	"encoding/json"
	"slices"
	"time"
)

// Outcomes of an audit entry.
const (
	OutcomeReleased = "released" // every asked field was released
	OutcomePartial  = "partial"  // some fields released, some withheld
	OutcomeDenied   = "denied"   // nothing released
	OutcomeDone     = "done"     // a non-release action (erasure, login, export) succeeded
	OutcomeFailed   = "failed"   // a non-release action failed
)

// Entry is one leaf of the audit log. It carries no personal data: the
// subject is a keyed pseudonym, and released/withheld are field names only.
// The field order here is the canonical order of the leaf's JSON.
type Entry struct {
	Index          uint64    `json:"index"`
	Time           time.Time `json:"time"`
	DecisionID     string    `json:"decision_id"`
	Actor          string    `json:"actor"`
	Action         string    `json:"action"`
	Purpose        string    `json:"purpose"`
	Subject        string    `json:"subject"`
	Resource       string    `json:"resource"`
	Released       []string  `json:"released"`
	Withheld       []string  `json:"withheld"`
	Outcome        string    `json:"outcome"`
	Reason         string    `json:"reason"`
	PolicyRevision string    `json:"policy_revision"`
}

// Normalize puts e in canonical form: UTC time truncated to microseconds
// (what PostgreSQL stores), sorted non-nil field lists.
func (e *Entry) Normalize() {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if e.Released == nil {
		e.Released = []string{}
	}
	if e.Withheld == nil {
		e.Withheld = []string{}
	}
	slices.Sort(e.Released)
	slices.Sort(e.Withheld)
}

// Canonical returns the leaf bytes of e: its normalized JSON encoding.
func (e Entry) Canonical() ([]byte, error) {
	e.Released = slices.Clone(e.Released)
	e.Withheld = slices.Clone(e.Withheld)
	e.Normalize()
	return json.Marshal(e)
}
