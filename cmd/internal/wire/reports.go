package wire

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Reports builds the reports an auditor asks for from the policy in force
// and the audit log.
type Reports struct{ s *System }

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
	// Grievances is the grievance desk's service level (share resolved in
	// time); absent when the record is built without a database.
	Grievances *commerce.SLAReport `json:"grievance_sla,omitempty"`
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

// Processing implements httpapi.Reports.
func (r *Reports) Processing(ctx context.Context) (any, error) {
	return r.Record(ctx)
}

// Record builds the Art. 30 record from the live policy data.
func (r *Reports) Record(ctx context.Context) (ProcessingRecord, error) {
	d := r.s.Policy.Data()
	rec := ProcessingRecord{
		Title:          "Record of processing activities (GDPR Art. 30; DPDP Act 2023)",
		GeneratedAt:    time.Now().UTC().Truncate(time.Second),
		Controller:     r.s.Config.WhatsApp.StoreName + " (controller), Sieve broker (processor)",
		PolicyRevision: r.s.Policy.Revision(),
		SecurityMeasures: []string{
			"personal data sealed at rest with XChaCha20-Poly1305 under a data key per shopper, wrapped with age",
			"erasure by destroying the shopper's data key (crypto-shredding), which also covers backups",
			"identifiers stored only as keyed blind indexes; partners see pairwise pseudonyms",
			"every release and refusal written to an append-only RFC 6962 Merkle log with signed checkpoints",
			"partners authenticated with short-lived EdDSA access tokens (RFC 9068), scoped per purpose",
			"purpose-bound minimisation decided by Open Policy Agent; any policy error denies",
		},
		Transfers: "none outside the broker's region; WhatsApp Cloud API (Meta) acts as the messaging processor",
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
	if r.s.Desk != nil && r.s.DB != nil {
		sla, err := r.s.Desk.SLA(ctx)
		if err != nil {
			return rec, err
		}
		rec.Grievances = &sla
	}
	return rec, nil
}

// With binds the reports to a system.
func (r *Reports) With(s *System) *Reports { r.s = s; return r }
