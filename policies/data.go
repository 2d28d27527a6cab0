package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// Data is a typed view of the policy data (data.sieve), for the compliance
// dashboard, the GDPR Art. 30 record of processing and the retention
// sweeper. It is what the Rego rules decide on, so reports built from it
// describe the policy actually in force.
type Data struct {
	// LawfulBases names each lawful basis a purpose may rest on, with its
	// legal reference.
	LawfulBases map[string]string `json:"lawful_bases"`
	// DPDPSections names each section of the DPDP Act 2023 a purpose may
	// rest on in India: consent (s. 6) or a legitimate use (s. 7(a)…(i)).
	// The Act has no "contract" basis, so the notice names these.
	DPDPSections map[string]string `json:"dpdp_sections"`
	// PartyKinds are the recipients a release may go to.
	PartyKinds map[broker.PartyKind]PartyKindInfo `json:"party_kinds"`
	// Transforms describes each transform for people.
	Transforms map[broker.Transform]string `json:"transforms"`
	// Purposes are the purposes releases may be asked for.
	Purposes map[broker.Purpose]Purpose `json:"purposes"`
	// Fields is the field catalogue: every field a record may have.
	Fields map[string]Field `json:"fields"`
	// Retention is the retention period of each data category.
	Retention map[string]Retention `json:"retention"`
	// RetentionClass says which retention rules apply to the controller:
	// "large_ecommerce" (DPDP Rules 2025, Third Schedule: three years after
	// the last interaction) or "purpose_served" (until the purpose is
	// served). Empty means purpose_served.
	RetentionClass string `json:"retention_class,omitempty"`
	// Commencement is the date (YYYY-MM-DD) from which the Third Schedule
	// periods count, at the earliest: 2025-11-13.
	Commencement string `json:"commencement,omitempty"`
	// Transfers are the cross-border transfer rules (SPEC §5.10).
	Transfers Transfers `json:"transfers"`
}

// Transfers lists the countries (ISO 3166-1 alpha-2) the transfer rules
// name. A release to a recipient outside the shopper's jurisdiction is
// allowed for an EEA shopper only to the EEA, an adequacy country or under
// SCC/BCR (GDPR Ch. V), and for an Indian shopper never to a country the
// government restricted under DPDP §16.
type Transfers struct {
	// EEA is the European Economic Area.
	EEA []string `json:"eea"`
	// Adequacy are the countries with an EU adequacy decision (Art. 45).
	Adequacy []string `json:"adequacy"`
	// DPDPRestricted are the countries notified under DPDP §16(1);
	// empty until the government names one.
	DPDPRestricted []string `json:"dpdp_restricted"`
}

// TransferAllowed reports, as the policy decides it, whether data of a
// shopper in subject may go to a recipient in recipient under basis, and
// the denial reason code when not. Reports (the Art. 30 record) use it to
// describe the transfers in force; releases are decided by Rego.
func (d Data) TransferAllowed(subject, recipient, basis string) (bool, string) {
	switch {
	case subject == "" || recipient == "" || subject == recipient:
		return true, ""
	case slices.Contains(d.Transfers.EEA, subject):
		if slices.Contains(d.Transfers.EEA, recipient) || slices.Contains(d.Transfers.Adequacy, recipient) ||
			basis == "scc" || basis == "bcr" {
			return true, ""
		}
		return false, "no_transfer_basis"
	case subject == "IN" && slices.Contains(d.Transfers.DPDPRestricted, recipient):
		return false, "restricted_country"
	}
	return true, ""
}

// Retention classes.
const (
	RetentionLargeEcommerce = "large_ecommerce"
	RetentionPurposeServed  = "purpose_served"
)

// CommencementFloor is the earliest date the Third Schedule periods may
// count from (DPDP Rules 2025, in force 13 Nov 2025).
var CommencementFloor = time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC)

// PartyKindInfo describes a kind of recipient.
type PartyKindInfo struct {
	// Side is "retail", "messaging", "broker" or "oversight".
	Side        string `json:"side"`
	Description string `json:"description"`
	// Jurisdiction is where recipients of this kind process the data (an
	// ISO 3166-1 alpha-2 code), named per recipient in the notice.
	Jurisdiction string `json:"jurisdiction,omitempty"`
}

// Purpose is what the policy says about one purpose.
type Purpose struct {
	// LawfulBasis is a key of Data.LawfulBases: contract, consent,
	// legitimate_interest or legal_obligation.
	LawfulBasis string `json:"lawful_basis"`
	// DataLifeDays is the purpose's data life (SPEC §5.12): how many days
	// a recipient may keep what it received for this purpose. Every
	// release carries it as privacy.retain_until and its audit leaf
	// records it.
	DataLifeDays int    `json:"data_life_days"`
	DPDPSection  string `json:"dpdp_section"`
	// DPDPSection is a key of Data.DPDPSections: the section of the DPDP
	// Act the purpose rests on for a shopper in India.
	Description string `json:"description"`
	// Consent lists the consent flags the purpose needs ("notice",
	// "marketing", "analytics"); "notice" is always among them, except
	// for a purpose that answers the shopper's own rights request.
	Consent []string `json:"consent"`
	// AnswersRightsRequest marks the purpose that answers the shopper's
	// own access or portability request: the broker owes that answer
	// whether or not they accepted the notice, so it needs no consent. It
	// requires the legal_obligation basis and oversight parties only.
	AnswersRightsRequest bool `json:"answers_rights_request,omitempty"`
	// States lists the order states in which the purpose is open; nil
	// means every state.
	States []string `json:"states,omitempty"`
	// Parties are the party kinds that may use the purpose.
	Parties map[broker.PartyKind]Grant `json:"parties"`
}

// DataLife is the purpose's data life as a duration.
func (p Purpose) DataLife() time.Duration { return time.Duration(p.DataLifeDays) * 24 * time.Hour }

// Grant is what one party kind may receive for one purpose.
type Grant struct {
	// Scopes the party must hold, all of them; empty for the shopper's chat.
	Scopes []broker.Scope `json:"scopes"`
	// Fields maps each field the party may receive to its transform; any
	// other field is withheld.
	Fields map[string]broker.Transform `json:"fields"`
}

// Field is one entry of the field catalogue.
type Field struct {
	// Record is the kind of record the field belongs to: "order" (the
	// retail side's view of a shopper's order) or "status_update" (a
	// retailer's update on its way to the shopper).
	Record string `json:"record"`
	// Category is the data category, a key of Data.Retention.
	Category    string `json:"category"`
	Description string `json:"description"`
	// Internal marks a retailer-internal field that policy never releases.
	Internal bool `json:"internal,omitempty"`
}

// Retention is how long one data category is kept.
type Retention struct {
	// Days after the last interaction; 0 means the data is never kept.
	Days int `json:"days"`
	// LegalMinimumDays is how long a law requires the category to be kept
	// at least (e.g. invoices 2190 days, CGST Act s.36); Days may not be
	// shorter.
	LegalMinimumDays int `json:"legal_minimum_days,omitempty"`
	// Hold marks a category an erasure does not shred at once: it is kept,
	// releasable only for legal_obligation, until LegalMinimumDays have
	// passed, then shredded by the sweeper.
	Hold        bool   `json:"hold,omitempty"`
	Basis       string `json:"basis"`
	Description string `json:"description"`
}

// LegalMinimum is the legal minimum as a duration.
func (r Retention) LegalMinimum() time.Duration {
	return time.Duration(r.LegalMinimumDays) * 24 * time.Hour
}

// Period is the retention period as a duration.
func (r Retention) Period() time.Duration { return time.Duration(r.Days) * 24 * time.Hour }

// CategoryOf returns the data category of a field; ok is false for a field
// the catalogue does not know.
func (d Data) CategoryOf(field string) (category string, ok bool) {
	f, ok := d.Fields[field]
	return f.Category, ok
}

// CategoryNames returns the data categories the fields are in, in
// lexical order, each once.
func (d Data) CategoryNames() []string {
	var out []string
	for _, f := range d.Fields {
		if f.Category != "" && !slices.Contains(out, f.Category) {
			out = append(out, f.Category)
		}
	}
	slices.Sort(out)
	return out
}

// PurposeNames returns the purposes in lexical order, for stable reports.
func (d Data) PurposeNames() []broker.Purpose { return slices.Sorted(maps.Keys(d.Purposes)) }

// FieldsOf returns the fields of the given record kind ("order",
// "status_update") in lexical order.
func (d Data) FieldsOf(record string) []string {
	var out []string
	for name, f := range d.Fields {
		if f.Record == record {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Clone returns a deep copy, so that callers may not change the data an
// engine decides on.
func (d Data) Clone() Data {
	c := Data{
		LawfulBases:  maps.Clone(d.LawfulBases),
		DPDPSections: maps.Clone(d.DPDPSections),
		PartyKinds:   maps.Clone(d.PartyKinds),
		Transforms:   maps.Clone(d.Transforms),
		Fields:       maps.Clone(d.Fields),
		Retention:    maps.Clone(d.Retention),
		Transfers: Transfers{EEA: slices.Clone(d.Transfers.EEA), Adequacy: slices.Clone(d.Transfers.Adequacy),
			DPDPRestricted: slices.Clone(d.Transfers.DPDPRestricted)},
		Purposes: make(map[broker.Purpose]Purpose, len(d.Purposes)),
	}
	for name, p := range d.Purposes {
		p.Consent = slices.Clone(p.Consent)
		p.States = slices.Clone(p.States)
		parties := make(map[broker.PartyKind]Grant, len(p.Parties))
		for k, g := range p.Parties {
			parties[k] = Grant{Scopes: slices.Clone(g.Scopes), Fields: maps.Clone(g.Fields)}
		}
		p.Parties = parties
		c.Purposes[name] = p
	}
	return c
}

// decodeData decodes data.sieve strictly: an unknown key is an error, since
// a mistyped key ("consnet") would otherwise silently drop a requirement.
func decodeData(doc any) (Data, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return Data{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d Data
	if err := dec.Decode(&d); err != nil {
		return Data{}, err
	}
	return d, nil
}

var (
	namePattern         = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	jurisdictionPattern = regexp.MustCompile(`^[A-Z]{2}$`)
	fieldPattern        = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	consentFlags        = []string{"notice", "marketing", "analytics"}
	releasing           = []broker.Transform{broker.TransformKeep, broker.TransformMask, broker.TransformGeneralise, broker.TransformPseudonym}
	allTransforms       = append(slices.Clone(releasing), broker.TransformDrop)
	partySides          = []string{"retail", "messaging", "broker", "oversight"}
	knownPartyKinds     = append(slices.Clone(broker.PartnerKinds), broker.KindShopper, broker.KindOfficer, broker.KindSystem)
	countryPattern      = jurisdictionPattern
)

// Validate reports every problem of the data at once, so that a broken
// policy directory is fixed in one round. It checks structure and
// references; the Rego tests beside data.json check the privacy invariants
// on top (no phone to the retailer, and so on).
func (d Data) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(d.Purposes) == 0 {
		bad("no purposes")
	}
	if len(d.Fields) == 0 {
		bad("no fields")
	}
	if len(d.Retention) == 0 {
		bad("no retention periods")
	}
	for _, t := range allTransforms {
		if _, ok := d.Transforms[t]; !ok {
			bad("transform %q is not described", t)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(d.Transforms)) {
		if !slices.Contains(allTransforms, t) {
			bad("unknown transform %q", t)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.PartyKinds)) {
		info := d.PartyKinds[k]
		if !slices.Contains(knownPartyKinds, k) {
			bad("party_kinds: unknown party kind %q", k)
		}
		if !slices.Contains(partySides, info.Side) {
			bad("party_kinds.%s: side %q is not one of %v", k, info.Side, partySides)
		}
		if info.Side != "broker" && !jurisdictionPattern.MatchString(info.Jurisdiction) {
			bad("party_kinds.%s: jurisdiction %q is not an ISO 3166-1 alpha-2 code", k, info.Jurisdiction)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Retention)) {
		r := d.Retention[name]
		if !namePattern.MatchString(name) {
			bad("retention: bad category name %q", name)
		}
		if r.Days < 0 {
			bad("retention.%s: negative days", name)
		}
		if r.Basis == "" {
			bad("retention.%s: no basis", name)
		}
		if r.LegalMinimumDays < 0 || r.Days < r.LegalMinimumDays {
			bad("retention.%s: %d days is shorter than its legal minimum of %d", name, r.Days, r.LegalMinimumDays)
		}
		if r.Hold && r.LegalMinimumDays == 0 {
			bad("retention.%s: a hold needs a legal minimum", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Fields)) {
		f := d.Fields[name]
		if !fieldPattern.MatchString(name) {
			bad("fields: bad field name %q", name)
		}
		if f.Record == "" {
			bad("fields.%s: no record", name)
		}
		if _, ok := d.Retention[f.Category]; !ok {
			bad("fields.%s: category %q has no retention period", name, f.Category)
		}
	}
	for _, name := range d.PurposeNames() {
		d.validatePurpose(name, d.Purposes[name], bad)
	}
	switch d.RetentionClass {
	case "", RetentionLargeEcommerce, RetentionPurposeServed:
	default:
		bad("retention_class %q is not %s or %s", d.RetentionClass, RetentionLargeEcommerce, RetentionPurposeServed)
	}
	if d.Commencement != "" {
		if t, err := time.Parse(time.DateOnly, d.Commencement); err != nil || t.Before(CommencementFloor) {
			bad("commencement %q must be a date (YYYY-MM-DD) no earlier than %s", d.Commencement, CommencementFloor.Format(time.DateOnly))
		}
	}
	if len(d.Transfers.EEA) == 0 {
		bad("transfers.eea is empty (the EEA transfer rule would treat every country as a third country)")
	}
	for list, cs := range map[string][]string{"eea": d.Transfers.EEA, "adequacy": d.Transfers.Adequacy,
		"dpdp_restricted": d.Transfers.DPDPRestricted} {
		for _, c := range cs {
			if !countryPattern.MatchString(c) {
				bad("transfers.%s: %q is not an ISO 3166-1 alpha-2 code", list, c)
			}
		}
	}
	return errors.Join(errs...)
}

func (d Data) validatePurpose(name broker.Purpose, p Purpose, bad func(string, ...any)) {
	at := "purposes." + string(name)
	if !namePattern.MatchString(string(name)) {
		bad("purposes: bad purpose name %q", name)
	}
	if _, ok := d.LawfulBases[p.LawfulBasis]; !ok {
		bad("%s: lawful basis %q is not declared in lawful_bases", at, p.LawfulBasis)
	}
	if _, ok := d.DPDPSections[p.DPDPSection]; !ok {
		bad("%s: dpdp_section %q is not declared in dpdp_sections", at, p.DPDPSection)
	}
	if p.Description == "" {
		bad("%s: no description", at)
	}
	if p.DataLifeDays <= 0 || p.DataLifeDays > 3650 {
		bad("%s: data_life_days must be 1 to 3650 (every release carries a data life)", at)
	}
	switch {
	case p.AnswersRightsRequest && p.LawfulBasis != "legal_obligation":
		bad("%s: answers_rights_request needs the legal_obligation basis", at)
	case p.AnswersRightsRequest:
		for kind := range p.Parties {
			// The shopper kind is the data subject's own chat: their
			// export goes to them ("export my data", GDPR Art. 20).
			if k, ok := d.PartyKinds[kind]; !ok || (k.Side != "oversight" && kind != broker.KindShopper) {
				bad("%s: answers_rights_request is for the oversight side and the shopper only, not %q", at, kind)
			}
		}
	case !slices.Contains(p.Consent, "notice"):
		bad("%s: consent must include \"notice\"", at)
	}
	for _, c := range p.Consent {
		if !slices.Contains(consentFlags, c) {
			bad("%s: unknown consent %q (one of %v)", at, c, consentFlags)
		}
	}
	if p.LawfulBasis == "consent" && len(p.Consent) < 2 {
		bad("%s: lawful basis consent needs an opt-in besides the notice", at)
	}
	if p.States != nil && len(p.States) == 0 {
		bad("%s: states is empty (omit it to open the purpose in every state)", at)
	}
	if len(p.Parties) == 0 {
		bad("%s: no party kind may use it", at)
	}
	for _, kind := range slices.Sorted(maps.Keys(p.Parties)) {
		g := p.Parties[kind]
		at := at + ".parties." + string(kind)
		if _, ok := d.PartyKinds[kind]; !ok {
			bad("%s: party kind is not declared in party_kinds", at)
		} else if d.PartyKinds[kind].Side == "broker" {
			bad("%s: the broker side is never a recipient", at)
		}
		if g.Scopes == nil {
			bad("%s: no scopes (write [] when none is needed)", at)
		}
		for _, s := range g.Scopes {
			if !slices.Contains(broker.AllScopes, s) {
				bad("%s: unknown scope %q", at, s)
			}
		}
		if len(g.Fields) == 0 {
			bad("%s: no fields", at)
		}
		for _, f := range slices.Sorted(maps.Keys(g.Fields)) {
			t := g.Fields[f]
			field, ok := d.Fields[f]
			switch {
			case !ok:
				bad("%s.fields: %q is not in the field catalogue", at, f)
			case field.Internal:
				bad("%s.fields: %q is a retailer-internal field and may never be released", at, f)
			}
			if !slices.Contains(releasing, t) {
				bad("%s.fields.%s: transform %q does not release anything (one of %v; leave a field out to withhold it)", at, f, t, releasing)
			}
		}
	}
}

// RetentionPeriods is every category's retention period, as the retention
// sweeper takes them (category → period).
func (d Data) RetentionPeriods() map[string]time.Duration {
	out := make(map[string]time.Duration, len(d.Retention))
	for name, r := range d.Retention {
		out[name] = r.Period()
	}
	return out
}

// RetentionBases is every category's legal basis for its retention, in
// words (category → basis), as officers see it beside a hold.
func (d Data) RetentionBases() map[string]string {
	out := make(map[string]string, len(d.Retention))
	for name, r := range d.Retention {
		out[name] = r.Basis
	}
	return out
}
