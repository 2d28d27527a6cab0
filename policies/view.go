package policies

import (
	"maps"
	"slices"
)

// View is the policy in force as a reader sees it (the dashboard's
// policies page): every list in name order, built from the same data the
// engine decides on.
type View struct {
	Revision   string
	Purposes   []PurposeView
	PartyKinds []PartyKindView
	Transforms []Described
	Fields     []FieldView
	Retention  []RetentionRow // in category order
}

// PurposeView is what the policy says about one purpose.
type PurposeView struct {
	Name           string
	Description    string
	LawfulBasis    string
	LegalReference string
	Consent        []string // consent flags needed ("notice", "marketing", …)
	States         []string // order states the purpose is open in; empty: all
	Grants         []GrantView
}

// GrantView is what one party kind may receive for a purpose.
type GrantView struct {
	Kind   string
	Scopes []string
	Fields map[string]string // field → transform; any other field is withheld
}

// PartyKindView describes a kind of recipient.
type PartyKindView struct {
	Kind        string
	Side        string
	Description string
}

// Described is a name with its description.
type Described struct {
	Name        string
	Description string
}

// FieldView is one field of the policy's field catalogue.
type FieldView struct {
	Name        string
	Record      string
	Category    string
	Description string
	Internal    bool // a retailer-internal field policy never releases
}

// View builds the reader's view of d at revision.
func (d Data) View(revision string) View {
	v := View{Revision: revision}
	for _, name := range d.PurposeNames() {
		p := d.Purposes[name]
		pv := PurposeView{Name: string(name), Description: p.Description, LawfulBasis: p.LawfulBasis,
			LegalReference: d.LawfulBases[p.LawfulBasis], Consent: p.Consent, States: p.States}
		for _, k := range slices.Sorted(maps.Keys(p.Parties)) {
			g := p.Parties[k]
			fields := make(map[string]string, len(g.Fields))
			for f, t := range g.Fields {
				fields[f] = string(t)
			}
			pv.Grants = append(pv.Grants, GrantView{Kind: string(k), Scopes: g.Scopes, Fields: fields})
		}
		v.Purposes = append(v.Purposes, pv)
	}
	for _, k := range slices.Sorted(maps.Keys(d.PartyKinds)) {
		info := d.PartyKinds[k]
		v.PartyKinds = append(v.PartyKinds, PartyKindView{Kind: string(k), Side: info.Side, Description: info.Description})
	}
	for _, t := range slices.Sorted(maps.Keys(d.Transforms)) {
		v.Transforms = append(v.Transforms, Described{Name: string(t), Description: d.Transforms[t]})
	}
	for _, f := range slices.Sorted(maps.Keys(d.Fields)) {
		info := d.Fields[f]
		v.Fields = append(v.Fields, FieldView{Name: f, Record: info.Record, Category: info.Category,
			Description: info.Description, Internal: info.Internal})
	}
	for _, c := range slices.Sorted(maps.Keys(d.Retention)) {
		r := d.Retention[c]
		v.Retention = append(v.Retention, RetentionRow{Category: c, Days: r.Days, Basis: r.Basis, Description: r.Description})
	}
	return v
}
