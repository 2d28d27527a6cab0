package audit

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcomes of an audit entry.
const (
	OutcomeReleased = "released" // every asked field was released
	OutcomePartial  = "partial"  // some fields released, some withheld
	OutcomeDenied   = "denied"   // nothing released
	OutcomeDone     = "done"     // a non-release action (erasure, login, export) succeeded
	OutcomeFailed   = "failed"   // a non-release action failed
)

// Size limits of an entry. Entries carry identifiers and field names only,
// so anything larger is a bug or an attack; the limits also keep every
// field indexable by the store.
const (
	MaxLeafSize  = 64 << 10 // the canonical encoding
	MaxFieldSize = 512      // each identifier field and each field name
	MaxReasonLen = 4096     // the reason
	MaxFields    = 1024     // names in released plus withheld
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
	// RetainUntil is the data life of a release (SPEC §5.12): the time by
	// which the recipient must delete what it received. It is optional:
	// zero is left out of the leaf, so leaves written before it existed
	// keep their bytes and verify unchanged.
	RetainUntil time.Time `json:"retain_until,omitzero"`
	// NoticeSHA256 and Lang are optional (omitted from the leaf when
	// empty): the notice version and language a consent was given under.
	NoticeSHA256 string `json:"notice_sha256,omitempty"`
	Lang         string `json:"lang,omitempty"`

	// The recipient's legal registry entry (SPEC §5.10), on releases to a
	// partner: optional, encoded after policy_revision only when set, so
	// leaves written before these fields existed verify unchanged.
	RecipientRole string `json:"recipient_role,omitempty"`
	Jurisdiction  string `json:"jurisdiction,omitempty"`
	TransferBasis string `json:"transfer_basis,omitempty"`
}

// legal returns pointers to the optional legal fields, in canonical order.
func (e *Entry) legal() [3]*string {
	return [3]*string{&e.RecipientRole, &e.Jurisdiction, &e.TransferBasis}
}

// Normalize puts e in canonical form: UTC time truncated to microseconds
// (what PostgreSQL stores), sorted non-nil field lists, and strings that are
// valid UTF-8 (each run of invalid bytes becomes U+FFFD, so the canonical
// encoding round-trips through ParseEntry).
func (e *Entry) Normalize() {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if !e.RetainUntil.IsZero() {
		e.RetainUntil = e.RetainUntil.UTC().Truncate(time.Microsecond)
	}
	if e.Released == nil {
		e.Released = []string{}
	}
	if e.Withheld == nil {
		e.Withheld = []string{}
	}
	for _, p := range e.strings() {
		*p = validUTF8(*p)
	}
	for _, p := range e.legal() {
		*p = validUTF8(*p)
	}
	for i := range e.Released {
		e.Released[i] = validUTF8(e.Released[i])
	}
	for i := range e.Withheld {
		e.Withheld[i] = validUTF8(e.Withheld[i])
	}
	slices.Sort(e.Released)
	slices.Sort(e.Withheld)
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// strings returns pointers to the scalar string fields, in canonical order.
// strings are e's string fields: the filter fields first, in KeyNames
// order, then reason and policy_revision.
func (e *Entry) strings() [11]*string {
	return [11]*string{&e.DecisionID, &e.Actor, &e.Action, &e.Purpose, &e.Subject, &e.Resource,
		&e.Outcome, &e.Reason, &e.PolicyRevision, &e.NoticeSHA256, &e.Lang}
}

// Canonical returns the leaf bytes of e: its normalized JSON encoding. The
// encoding is byte for byte what encoding/json produces for the normalized
// entry (HTML-safe escaping, RFC 3339 time), written by hand so that the
// leaves of a long-lived log never depend on a library's choices.
func (e Entry) Canonical() ([]byte, error) {
	e.Released = slices.Clone(e.Released)
	e.Withheld = slices.Clone(e.Withheld)
	e.Normalize()
	return appendCanonical(make([]byte, 0, 384), &e)
}

// KeySeparator may not appear in an entry's filter fields (KeyNames), so
// that a store can keep them joined by it, unambiguously.
const KeySeparator = 0x1f

// KeyNames are the names of an entry's filter fields, in the order Keys
// returns them.
var KeyNames = [...]string{"decision_id", "actor", "action", "purpose", "subject", "resource", "outcome"}

// Keys returns e's filter fields, in KeyNames order.
func (e *Entry) Keys() [len(KeyNames)]string {
	return [...]string{e.DecisionID, e.Actor, e.Action, e.Purpose, e.Subject, e.Resource, e.Outcome}
}

// ErrInvalidEntry is returned by Validate (wrapped) for an entry that may
// not be appended. The caller must fix the entry: retrying cannot help.
var ErrInvalidEntry = errors.New("audit: invalid entry")

// Validate reports whether e may be appended to the log: it needs a
// decision id, a non-zero time representable in RFC 3339 (years 0001–9999),
// strings without NUL bytes within the size limits, the seven filter fields
// (decision_id to outcome) without the unit separator (0x1f) either, and a
// canonical encoding of at most MaxLeafSize bytes. (A store may keep the
// filter fields joined by the unit separator, as the PostgreSQL one does.)
func (e Entry) Validate() error {
	_, err := e.ValidLeaf()
	return err
}

// ValidLeaf validates e (see Validate) and returns its canonical encoding,
// encoding it once.
func (e Entry) ValidLeaf() ([]byte, error) {
	if e.DecisionID == "" {
		return nil, fmt.Errorf("%w: decision_id is required", ErrInvalidEntry)
	}
	if e.Time.IsZero() {
		return nil, fmt.Errorf("%w: time is required", ErrInvalidEntry)
	}
	if y := e.Time.UTC().Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("%w: time %v is outside years 1-9999", ErrInvalidEntry, e.Time)
	}
	if y := e.RetainUntil.UTC().Year(); !e.RetainUntil.IsZero() && (y < 1 || y > 9999) {
		return nil, fmt.Errorf("%w: retain_until %v is outside years 1-9999", ErrInvalidEntry, e.RetainUntil)
	}
	names := [...]string{KeyNames[0], KeyNames[1], KeyNames[2], KeyNames[3], KeyNames[4], KeyNames[5], KeyNames[6],
		"reason", "policy_revision", "notice_sha256", "lang"} // the order of e.strings()
	for i, p := range e.strings() {
		max := MaxFieldSize
		if names[i] == "reason" {
			max = MaxReasonLen
		}
		if len(*p) > max || strings.IndexByte(*p, 0) >= 0 {
			return nil, fmt.Errorf("%w: %s is longer than %d bytes or holds a NUL byte", ErrInvalidEntry, names[i], max)
		}
		if i < len(KeyNames) && strings.IndexByte(*p, KeySeparator) >= 0 {
			return nil, fmt.Errorf("%w: %s holds the unit separator (0x1f)", ErrInvalidEntry, names[i])
		}
	}
	for _, p := range e.legal() {
		if len(*p) > MaxFieldSize || strings.IndexByte(*p, 0) >= 0 {
			return nil, fmt.Errorf("%w: a legal registry field is longer than %d bytes or holds a NUL byte", ErrInvalidEntry, MaxFieldSize)
		}
	}
	if len(e.Released)+len(e.Withheld) > MaxFields {
		return nil, fmt.Errorf("%w: more than %d field names", ErrInvalidEntry, MaxFields)
	}
	for _, l := range [2][]string{e.Released, e.Withheld} {
		for _, f := range l {
			if len(f) > MaxFieldSize || strings.IndexByte(f, 0) >= 0 {
				return nil, fmt.Errorf("%w: a field name is longer than %d bytes or holds a NUL byte", ErrInvalidEntry, MaxFieldSize)
			}
		}
	}
	b, err := e.Canonical()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEntry, err)
	}
	if len(b) > MaxLeafSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, more than %d", ErrInvalidEntry, len(b), MaxLeafSize)
	}
	return b, nil
}
