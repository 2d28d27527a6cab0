package seal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/seal"
)

var (
	identity = broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: "shp_1"}
	delivery = broker.Binding{Table: "orders", Column: "sealed", RowID: "ord_1"}
	invoice  = broker.Binding{Table: "orders", Column: "sealed_invoice", RowID: "ord_1"}
)

// Keys per data category (SPEC §5.5): contact, fulfilment and invoice are
// sealed under separate keys, so shredding some holds the others; records
// sealed before the split (under the single key) still open, and are
// re-sealed under their category key; key rotation re-wraps every key.
func TestCategoryKeys(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	plain := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	c := seal.NewCategorySealer(plain)

	legacy := mustSeal(t, plain, "shp_1", invoice, []byte("invoice sealed before the split"))
	id, _ := c.Seal(ctx, "shp_1", identity, []byte("919845000000"))
	del, _ := c.Seal(ctx, "shp_1", delivery, []byte("12 MG Road"))
	inv, _ := c.Seal(ctx, "shp_1", invoice, []byte("2 x atta"))
	for _, k := range []string{"shp_1", "shp_1#fulfilment", "shp_1#invoice"} {
		if _, err := db.SubjectKeys().GetSubjectKey(ctx, k); err != nil {
			t.Fatalf("no key %s: %v", k, err)
		}
	}
	// A category key does not open another category's record.
	if _, err := plain.Open(ctx, "shp_1#invoice", delivery, del); !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("the invoice key opens a delivery record: %v", err)
	}
	resealed, err := c.Reseal(ctx, "shp_1", invoice, legacy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Seal(ctx, "shp_1#x", identity, nil); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("a subject id with # = %v, want EInvalid", err)
	}

	// keys rotate re-wraps all of them.
	old := kr.Current()
	if _, err := kr.Rotate(false); err != nil {
		t.Fatal(err)
	}
	if err := plain.RewrapAll(ctx, nil); err != nil {
		t.Fatal(err)
	}
	counts, err := db.SubjectKeys().CountSubjectKeys(ctx)
	if err != nil || counts[old] != 0 || counts[kr.Current()] != 3 {
		t.Fatalf("after rotation keys by identity %v (old %s), want all 3 on %s", counts, old, kr.Current())
	}

	// An erasure holding invoices shreds contact and fulfilment only.
	if err := c.ShredCategories(ctx, "shp_1", []string{seal.CategoryContact, seal.CategoryFulfilment}); err != nil {
		t.Fatal(err)
	}
	cold := seal.NewCategorySealer(newSealer(t, kr, db.SubjectKeys(), seal.Options{}))
	for name, s := range map[string]*seal.CategorySealer{"shredding": c, "cold": cold} {
		if _, err := s.Open(ctx, "shp_1", identity, id); !errors.Is(err, seal.ErrErased) {
			t.Errorf("%s: contact after shred: %v", name, err)
		}
		if _, err := s.Open(ctx, "shp_1", delivery, del); !errors.Is(err, seal.ErrErased) {
			t.Errorf("%s: fulfilment after shred: %v", name, err)
		}
		for r, want := range map[*[]byte]string{&inv: "2 x atta", &resealed: "invoice sealed before the split"} {
			if got, err := s.Open(ctx, "shp_1", invoice, *r); err != nil || !bytes.Equal(got, []byte(want)) {
				t.Errorf("%s: held invoice: %q, %v", name, got, err)
			}
		}
		if _, err := s.Open(ctx, "shp_1", invoice, legacy); err == nil {
			t.Errorf("%s: a legacy invoice not re-sealed survived its key", name)
		}
	}
	if err := c.Shred(ctx, "shp_1"); err != nil {
		t.Fatal(err)
	}
	cold.Forget("shp_1") // what the erasure announcement does in another process
	if _, err := cold.Open(ctx, "shp_1", invoice, inv); !errors.Is(err, seal.ErrErased) {
		t.Errorf("invoice after the hold ends: %v", err)
	}
}
