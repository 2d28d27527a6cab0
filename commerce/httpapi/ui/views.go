package ui

import (
	"time"

	"github.com/sieve-broker/sieve/commerce"
)

// PolicyView is the policy in force, as the policies page shows it. The
// wiring builds it from the live policy data, so the page shows what the
// engine decides on.
type PolicyView struct {
	Revision   string
	Purposes   []PolicyPurpose   // in name order
	PartyKinds []PolicyPartyKind // in name order
	Transforms []Described       // in name order
	Fields     []PolicyField     // in name order
	Retention  []RetentionRow    // in category order
}

// PolicyPurpose is what the policy says about one purpose.
type PolicyPurpose struct {
	Name           string
	Description    string
	LawfulBasis    string
	LegalReference string
	Consent        []string // consent flags needed ("notice", "marketing", …)
	States         []string // order states the purpose is open in; empty: all
	Grants         []PolicyGrant
}

// PolicyGrant is what one party kind may receive for a purpose.
type PolicyGrant struct {
	Kind   string
	Scopes []string
	Fields map[string]string // field → transform; any other field is withheld
}

// PolicyPartyKind describes a kind of recipient.
type PolicyPartyKind struct {
	Kind        string
	Side        string
	Description string
}

// Described is a name with its description.
type Described struct {
	Name        string
	Description string
}

// PolicyField is one field of the policy's field catalogue.
type PolicyField struct {
	Name        string
	Record      string
	Category    string
	Description string
	Internal    bool // a retailer-internal field policy never releases
}

// RetentionRow is the retention period of one data category.
type RetentionRow struct {
	Category    string `json:"category"`
	Days        int    `json:"days"`
	Basis       string `json:"basis"`
	Description string `json:"description"`
}

// ProcessingRecord is the GDPR Art. 30 record of processing activities.
type ProcessingRecord struct {
	Title            string
	GeneratedAt      time.Time
	Controller       string
	PolicyRevision   string
	Activities       []ProcessingActivity
	Retention        []RetentionRow
	SecurityMeasures []string
	Transfers        string
	// Grievances is the grievance desk's service level, when known.
	Grievances *commerce.SLAReport
}

// ProcessingActivity is one purpose of the record.
type ProcessingActivity struct {
	Purpose        string
	Description    string
	LawfulBasis    string
	LegalReference string
	DataLifeDays   int // how long a recipient may keep what it received
	Consent        []string
	States         []string
	DataCategories []string
	Recipients     []ProcessingRecipient
}

// ProcessingRecipient is a kind of party that receives data for a purpose.
type ProcessingRecipient struct {
	Kind   string
	Side   string
	Scopes []string
	Fields map[string]string // field → transform
}
