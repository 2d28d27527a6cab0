package policies_test

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/policies"
)

func TestRetentionPeriods(t *testing.T) {
	e, err := policies.Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := e.Data()
	got := d.RetentionPeriods()
	if len(got) == 0 || len(got) != len(d.Retention) {
		t.Fatalf("%d periods for %d categories", len(got), len(d.Retention))
	}
	for name, r := range d.Retention {
		if want := time.Duration(r.Days) * 24 * time.Hour; got[name] != want {
			t.Errorf("%s: %v, want %v (%d days)", name, got[name], want, r.Days)
		}
	}
}

func TestRetentionBases(t *testing.T) {
	e, err := policies.Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := e.Data()
	got := d.RetentionBases()
	if len(got) != len(d.Retention) {
		t.Fatalf("%d bases for %d categories", len(got), len(d.Retention))
	}
	for name, r := range d.Retention {
		if r.Basis == "" || got[name] != r.Basis {
			t.Errorf("%s: %q, want %q (policy data requires a basis)", name, got[name], r.Basis)
		}
	}
	if got["invoice"] == "" {
		t.Error("the invoice category, the one erasures hold, names no basis")
	}
}
