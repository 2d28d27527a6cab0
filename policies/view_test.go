package policies

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
)

// TestView checks that the reader's view of the shipped policy says what
// the data says: every purpose, grant, party kind, transform, field and
// retention period, each list in name order.
func TestView(t *testing.T) {
	e, err := Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := e.Data()
	v := d.View("rev1")
	if v.Revision != "rev1" {
		t.Fatalf("revision %q", v.Revision)
	}
	if len(v.Purposes) != len(d.Purposes) || len(v.PartyKinds) != len(d.PartyKinds) ||
		len(v.Transforms) != len(d.Transforms) || len(v.Fields) != len(d.Fields) || len(v.Retention) != len(d.Retention) {
		t.Fatalf("view has %d purposes, %d kinds, %d transforms, %d fields, %d retention rows; data %d, %d, %d, %d, %d",
			len(v.Purposes), len(v.PartyKinds), len(v.Transforms), len(v.Fields), len(v.Retention),
			len(d.Purposes), len(d.PartyKinds), len(d.Transforms), len(d.Fields), len(d.Retention))
	}
	if !slices.IsSortedFunc(v.Purposes, func(a, b PurposeView) int { return strings.Compare(a.Name, b.Name) }) ||
		!slices.IsSortedFunc(v.Fields, func(a, b FieldView) int { return strings.Compare(a.Name, b.Name) }) ||
		!slices.IsSortedFunc(v.Retention, func(a, b RetentionRow) int { return strings.Compare(a.Category, b.Category) }) {
		t.Fatal("a list of the view is out of name order")
	}
	for _, p := range v.Purposes {
		want := d.Purposes[broker.Purpose(p.Name)]
		if p.LawfulBasis != want.LawfulBasis || p.LegalReference != d.LawfulBases[want.LawfulBasis] || len(p.Grants) != len(want.Parties) {
			t.Errorf("purpose %s: %+v; data %+v", p.Name, p, want)
		}
		for _, g := range p.Grants {
			grant := want.Parties[broker.PartyKind(g.Kind)]
			if len(g.Fields) != len(grant.Fields) {
				t.Errorf("%s/%s: %d fields, data %d", p.Name, g.Kind, len(g.Fields), len(grant.Fields))
			}
			for f, tr := range grant.Fields {
				if g.Fields[f] != string(tr) {
					t.Errorf("%s/%s: field %s is %q, data %q", p.Name, g.Kind, f, g.Fields[f], tr)
				}
			}
		}
	}
	// The retailer receives order fields and never the shopper's phone.
	var fulfil *PurposeView
	for i := range v.Purposes {
		if v.Purposes[i].Name == string(broker.PurposeOrderFulfilment) {
			fulfil = &v.Purposes[i]
		}
	}
	if fulfil == nil {
		t.Fatal("no order_fulfilment purpose in the view")
	}
	for _, g := range fulfil.Grants {
		if _, ok := g.Fields["customer.phone"]; ok && g.Kind == string(broker.KindRetailer) {
			t.Errorf("the view grants the retailer the phone number: %v", g.Fields)
		}
	}
	for _, r := range v.Retention {
		if r.Days != d.Retention[r.Category].Days || r.Basis != d.Retention[r.Category].Basis {
			t.Errorf("retention %s: %+v; data %+v", r.Category, r, d.Retention[r.Category])
		}
	}
}

// TestCategoryNames checks that the categories listed for the breach
// workbench are exactly those of the fields, each once, in order.
func TestCategoryNames(t *testing.T) {
	e, err := Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := e.Data()
	got := d.CategoryNames()
	want := map[string]bool{}
	for _, f := range d.Fields {
		if f.Category != "" {
			want[f.Category] = true
		}
	}
	if len(got) != len(want) || !slices.IsSorted(got) || len(got) < 3 {
		t.Fatalf("categories %v; the fields have %v", got, want)
	}
	for _, c := range got {
		if !want[c] {
			t.Errorf("category %q is no field's", c)
		}
	}
}
