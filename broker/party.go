package broker

import (
	"slices"
	"strings"
)

// PartyKind says which side of the chat a party stands on and what it does.
type PartyKind string

// The kinds of party. Partners are on the retail side; the shopper's chat is
// the messaging side; officers and the system act on the broker itself.
const (
	KindRetailer  PartyKind = "retailer"
	KindLogistics PartyKind = "logistics"
	KindPayments  PartyKind = "payments"
	KindAnalytics PartyKind = "analytics"
	// KindCompliance is a compliance client (a DPO's or auditor's tool): the
	// only partner kind that may hold audit:read and subjects:write.
	KindCompliance PartyKind = "compliance"
	KindShopper    PartyKind = "shopper" // the messaging side: the shopper's own chat
	KindOfficer    PartyKind = "officer"
	KindSystem     PartyKind = "system"
)

// PartnerKinds are the kinds a partner may be registered as.
var PartnerKinds = []PartyKind{KindRetailer, KindLogistics, KindPayments, KindAnalytics, KindCompliance}

// ValidPartnerKind reports whether k is a kind a partner may have.
func ValidPartnerKind(k PartyKind) bool { return slices.Contains(PartnerKinds, k) }

// Scope is an OAuth2 scope a partner may be granted.
type Scope = string

// The scopes of the partner API.
const (
	ScopeOrdersRead      Scope = "orders:read"
	ScopeOrdersWrite     Scope = "orders:write"
	ScopeDeliveryRead    Scope = "delivery:read"
	ScopeDeliveryMessage Scope = "delivery:message"
	ScopeDataRequest     Scope = "data:request"
	ScopeAuditRead       Scope = "audit:read"
	ScopeSubjectsWrite   Scope = "subjects:write"
)

// AllScopes lists every scope the broker knows.
var AllScopes = []Scope{ScopeOrdersRead, ScopeOrdersWrite, ScopeDeliveryRead, ScopeDeliveryMessage,
	ScopeDataRequest, ScopeAuditRead, ScopeSubjectsWrite}

// ComplianceScopes are the scopes that read the audit log or act on a
// shopper's rights (export, erase): they reach every shopper's data, so only
// a client of kind compliance may hold them (SPEC §4).
var ComplianceScopes = []Scope{ScopeAuditRead, ScopeSubjectsWrite}

// ScopeAllowed reports whether a partner of kind k may hold scope s.
func ScopeAllowed(k PartyKind, s Scope) bool {
	return k == KindCompliance || !slices.Contains(ComplianceScopes, s)
}

// ScopesForKind returns the scopes of list that a partner of kind k may
// hold, dropping the others: a legacy row granted audit:read as a retailer
// gets tokens and requests without it.
func ScopesForKind(k PartyKind, list []Scope) []Scope {
	if k == KindCompliance || !slices.ContainsFunc(list, func(s Scope) bool { return !ScopeAllowed(k, s) }) {
		return list
	}
	out := make([]Scope, 0, len(list))
	for _, s := range list {
		if ScopeAllowed(k, s) {
			out = append(out, s)
		}
	}
	return out
}

// ParseScopes splits a space-separated scope string, rejecting unknown
// scopes. Duplicates are removed and the result is sorted.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, f := range strings.Fields(s) {
		if !slices.Contains(AllScopes, f) {
			return nil, Errorf(EInvalid, "unknown scope %q", f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Party is whoever data is released to, or who acts.
type Party struct {
	ID     string    // partner client id, officer id, or "chat" for the shopper side
	Kind   PartyKind // see the Kind constants
	Scopes []Scope   // granted (for tokens: the token's) scopes, sorted
	// Legal is the recipient's legal registry entry, as the policy and the
	// audit log see it; zero for parties that are not outside recipients.
	Legal PartyLegal
}

// Legal roles of a recipient (GDPR Art. 4(7), 4(8), 26).
const (
	RoleProcessor       = "processor"
	RoleController      = "controller"
	RoleJointController = "joint_controller"
)

// Roles are the legal roles a partner may be registered with.
var Roles = []string{RoleProcessor, RoleController, RoleJointController}

// TransferBases are the transfer bases a partner may be registered with
// (GDPR Ch. V: adequacy Art. 45, SCC Art. 46(2)(c), BCR Art. 47, consent
// Art. 49(1)(a); none).
var TransferBases = []string{"adequacy", "scc", "bcr", "consent", "none"}

// PartyLegal is a recipient's legal registry entry, flattened for policy:
// role, agreement reference and expiry date (YYYY-MM-DD), jurisdiction
// (ISO 3166-1 alpha-2) and transfer basis.
type PartyLegal struct {
	Role             string
	Agreement        string
	AgreementExpires string
	Jurisdiction     string
	TransferBasis    string
}

// HasScope reports whether the party holds scope s.
func (p Party) HasScope(s Scope) bool { return slices.Contains(p.Scopes, s) }

// Actor is the party's name in the audit log: kind and id, no personal data.
func (p Party) Actor() string { return string(p.Kind) + ":" + p.ID }

// Purpose is the declared reason a release is asked for.
type Purpose string

// The purposes policy data knows. Marketing and analytics need an explicit
// opt-in from the shopper; the rest rest on the contract of the purchase.
const (
	PurposeOrderFulfilment Purpose = "order_fulfilment"
	PurposePayment         Purpose = "payment"
	PurposeDelivery        Purpose = "delivery"
	PurposeSupport         Purpose = "support"
	PurposeMarketing       Purpose = "marketing"
	PurposeAnalytics       Purpose = "analytics"
	// PurposeDataSubjectRequest is the release of a shopper's data to the
	// officer or compliance client answering that shopper's own access or
	// portability request (an export).
	PurposeDataSubjectRequest Purpose = "data_subject_request"
)

// Purposes lists every purpose in a stable order.
var Purposes = []Purpose{PurposeOrderFulfilment, PurposePayment, PurposeDelivery, PurposeSupport,
	PurposeMarketing, PurposeAnalytics, PurposeDataSubjectRequest}

// Consent is a shopper's consent state as the policy sees it.
type Consent struct {
	Notice    bool `json:"notice"`    // accepted the privacy notice (needed for any processing)
	Marketing bool `json:"marketing"` // opted in to marketing
	Analytics bool `json:"analytics"` // opted in to analytics
	// Child: the shopper said they are under 18 (DPDP Act s. 9). Policy
	// denies marketing and analytics for a child whatever else is set.
	Child bool `json:"child"`
}

// key packs the consent into a short cache-key fragment.
func (c Consent) key() byte {
	var b byte = '0'
	if c.Notice {
		b |= 1
	}
	if c.Marketing {
		b |= 2
	}
	if c.Analytics {
		b |= 4
	}
	if c.Child {
		b |= 8
	}
	return b
}
