package policies

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// ProcessingRecord is the GDPR Art. 30 record of processing activities.
type ProcessingRecord struct {
	Title            string              `json:"title"`
	GeneratedAt      time.Time           `json:"generated_at"`
	Controller       string              `json:"controller"`
	PolicyRevision   string              `json:"policy_revision"`
	Activities       []ProcessingPurpose `json:"activities"`
	Retention        []RetentionRow      `json:"retention"`
	SecurityMeasures []string            `json:"security_measures"`
	Transfers        string              `json:"international_transfers"`
	// Registered are the partners that receive data, with their legal
	// registry entry and what the transfer rules in force say of them
	// (SPEC §5.10); absent when the registry could not be read.
	Registered []RegisteredRecipient `json:"registered_recipients,omitempty"`
}

// RegisteredRecipient is one partner of the legal registry.
type RegisteredRecipient struct {
	ClientID         string `json:"client_id"`
	Name             string `json:"name"`
	Kind             string `json:"kind"`
	Role             string `json:"role"` // "controller (legacy)" when never registered
	Agreement        string `json:"agreement,omitempty"`
	AgreementExpires string `json:"agreement_expires,omitempty"`
	// AgreementValid says whether a processor or joint controller has an
	// agreement in force today (always true for a controller).
	AgreementValid bool   `json:"agreement_valid"`
	Jurisdiction   string `json:"jurisdiction"`
	TransferBasis  string `json:"transfer_basis"`
	// Transfers says, per shopper jurisdiction served ("IN", "EEA"),
	// whether policy lets this recipient receive their data: "domestic",
	// "allowed" or the denial reason code.
	Transfers map[string]string `json:"transfers"`
}

// ProcessingPurpose is one activity (purpose) of the record.
type ProcessingPurpose struct {
	Purpose        string `json:"purpose"`
	Description    string `json:"description"`
	LawfulBasis    string `json:"lawful_basis"`
	LegalReference string `json:"legal_reference"`
	// DataLifeDays is how long a recipient may keep what it received for
	// this purpose; every release states it as privacy.retain_until.
	DataLifeDays   int         `json:"data_life_days"`
	Consent        []string    `json:"consent_required"`
	States         []string    `json:"open_in_states,omitempty"`
	DataCategories []string    `json:"data_categories"`
	Recipients     []Recipient `json:"recipients"`
}

// Recipient is a kind of party that receives data for a purpose.
type Recipient struct {
	Kind   string            `json:"kind"`
	Side   string            `json:"side"`
	Scopes []string          `json:"scopes"`
	Fields map[string]string `json:"fields"` // field -> transform
}

// RetentionRow is the retention of one data category.
type RetentionRow struct {
	Category    string `json:"category"`
	Days        int    `json:"days"`
	Basis       string `json:"basis"`
	Description string `json:"description"`
}

// RecordInput is what the Art. 30 record needs besides the policy data.
type RecordInput struct {
	Now        time.Time // when the record is generated
	Revision   string    // the policy revision in force
	Controller string    // who the controller and the processor are
	// Partners is the partner registry; RegistryRead says it was read (an
	// empty registry read is not an unknown one).
	Partners     []broker.Partner
	RegistryRead bool
	// Home is the store's jurisdiction: a recipient elsewhere receives an
	// international transfer.
	Home string
}

// ProcessingRecord builds the Art. 30 record from the policy data: one
// activity per purpose with its recipients and data categories, the
// retention table, the security measures and, when the registry was read,
// each enabled partner's legal entry and what the transfer rules say of it.
func (d Data) ProcessingRecord(in RecordInput) ProcessingRecord {
	rec := ProcessingRecord{
		Title:          "Record of processing activities (GDPR Art. 30; DPDP Act 2023)",
		GeneratedAt:    in.Now.UTC().Truncate(time.Second),
		Controller:     in.Controller,
		PolicyRevision: in.Revision,
		SecurityMeasures: []string{
			"personal data sealed at rest with XChaCha20-Poly1305 under a data key per shopper, wrapped with age",
			"erasure by destroying the shopper's data key (crypto-shredding), which also covers backups",
			"identifiers stored only as keyed blind indexes; partners see pairwise pseudonyms",
			"every release and refusal written to an append-only RFC 6962 Merkle log with signed checkpoints",
			"partners authenticated with short-lived EdDSA access tokens (RFC 9068), scoped per purpose",
			"purpose-bound minimisation decided by Open Policy Agent; any policy error denies",
		},
		Transfers: "unknown: the partner registry was not read; WhatsApp Cloud API (Meta) acts as the messaging processor",
	}
	if in.RegistryRead {
		rec.Registered, rec.Transfers = registry(d, in.Partners, in.Home, in.Now.UTC().Format(time.DateOnly))
	}
	for _, name := range d.PurposeNames() {
		p := d.Purposes[name]
		act := ProcessingPurpose{Purpose: string(name), Description: p.Description, LawfulBasis: p.LawfulBasis,
			LegalReference: d.LawfulBases[p.LawfulBasis], DataLifeDays: p.DataLifeDays, Consent: p.Consent, States: p.States}
		cats := map[string]bool{}
		kinds := make([]broker.PartyKind, 0, len(p.Parties))
		for k := range p.Parties {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			g := p.Parties[k]
			rc := Recipient{Kind: string(k), Side: d.PartyKinds[k].Side, Scopes: g.Scopes, Fields: map[string]string{}}
			for f, t := range g.Fields {
				rc.Fields[f] = string(t)
				if c, ok := d.CategoryOf(f); ok {
					cats[c] = true
				}
			}
			act.Recipients = append(act.Recipients, rc)
		}
		for c := range cats {
			act.DataCategories = append(act.DataCategories, c)
		}
		sort.Strings(act.DataCategories)
		rec.Activities = append(rec.Activities, act)
	}
	for c, ret := range d.Retention {
		rec.Retention = append(rec.Retention, RetentionRow{Category: c, Days: ret.Days, Basis: ret.Basis,
			Description: ret.Description})
	}
	sort.Slice(rec.Retention, func(i, j int) bool { return rec.Retention[i].Category < rec.Retention[j].Category })
	return rec
}

// registry describes the enabled partners' legal entries and summarises
// the international transfers they make, from the registry and the
// transfer rules of the policy in force.
func registry(d Data, ps []broker.Partner, home, today string) ([]RegisteredRecipient, string) {
	out := []RegisteredRecipient{}
	var abroad []string
	for _, p := range ps {
		if p.Disabled {
			continue
		}
		party := broker.PartyOf(p, p.Scopes, home)
		l := party.Legal
		role := l.Role
		if p.Legal.Role == "" {
			role += " (legacy)"
		}
		needs := l.Role == broker.RoleProcessor || l.Role == broker.RoleJointController
		valid := !needs || (l.Agreement != "" && (l.AgreementExpires == "" || l.AgreementExpires >= today))
		rr := RegisteredRecipient{ClientID: p.ID, Name: p.Name, Kind: string(p.Kind), Role: role, Agreement: l.Agreement,
			AgreementExpires: l.AgreementExpires, AgreementValid: valid, Jurisdiction: l.Jurisdiction,
			TransferBasis: l.TransferBasis, Transfers: map[string]string{}}
		if rr.TransferBasis == "" {
			rr.TransferBasis = "none"
		}
		for label, shopper := range map[string]string{"IN": "IN", "EEA": "DE"} {
			switch ok, reason := d.TransferAllowed(shopper, l.Jurisdiction, l.TransferBasis); {
			case l.Jurisdiction == shopper || (label == "EEA" && slices.Contains(d.Transfers.EEA, l.Jurisdiction)):
				rr.Transfers[label] = "domestic"
			case ok:
				rr.Transfers[label] = "allowed"
			default:
				rr.Transfers[label] = reason
			}
		}
		if l.Jurisdiction != home {
			abroad = append(abroad, fmt.Sprintf("%s (%s, %s)", p.Name, l.Jurisdiction, rr.TransferBasis))
		}
		out = append(out, rr)
	}
	summary := "none: every registered recipient is in " + home + " (the store's jurisdiction)"
	if len(abroad) > 0 {
		summary = "to recipients outside " + home + ": " + strings.Join(abroad, "; ")
	}
	return out, summary + "; WhatsApp Cloud API (Meta) acts as the messaging processor"
}
