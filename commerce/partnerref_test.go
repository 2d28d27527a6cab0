package commerce

import (
	"context"
	"testing"

	"github.com/sieve-broker/sieve/broker"
)

// refStore records RememberPartnerRef calls; every other SubjectStore
// method is left to the nil interface, so the test fails loudly if
// rememberRef reaches for one.
type refStore struct {
	SubjectStore
	calls int
}

func (r *refStore) RememberPartnerRef(ctx context.Context, partner, ref, subject string) error {
	r.calls++
	return nil
}

// TestRememberRefIsPerService: the cache of recorded customer_refs belongs
// to one Service. A second Service (another database) must still write the
// pair; a repeated read on the same Service must not.
func TestRememberRefIsPerService(t *testing.T) {
	ctx := context.Background()
	d := broker.Decision{Released: broker.Record{"customer.ref": "cref_1"}}
	a, b := &refStore{}, &refStore{}
	sa, sb := &Orders{&Service{Ports: Ports{Subjects: a}}}, &Orders{&Service{Ports: Ports{Subjects: b}}}
	for range 3 {
		if err := sa.rememberRef(ctx, "logistics", d, "shp_1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.rememberRef(ctx, "logistics", d, "shp_1"); err != nil {
		t.Fatal(err)
	}
	if err := sa.rememberRef(ctx, "retailer", d, "shp_1"); err != nil {
		t.Fatal(err)
	}
	if a.calls != 2 || b.calls != 1 {
		t.Fatalf("writes: first service %d (want 2: one per partner), second %d (want 1)", a.calls, b.calls)
	}
	if err := sa.rememberRef(ctx, "logistics", broker.Decision{Released: broker.Record{}}, "shp_1"); err != nil || a.calls != 2 {
		t.Fatalf("a decision without customer.ref wrote: %d, %v", a.calls, err)
	}
}
