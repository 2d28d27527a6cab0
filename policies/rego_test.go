package policies

import (
	"context"
	"testing"
)

// TestRego runs every Rego unit test of the embedded tree through OPA's
// tester: the same tests `opa test policies/` runs.
func TestRego(t *testing.T) {
	results, err := Test(context.Background(), FS())
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, r := range results {
		switch {
		case r.Skip:
			t.Logf("skipped %s.%s", r.Package, r.Name)
		case r.Pass():
			ran++
		default:
			ran++
			t.Errorf("%s", r)
			if r.Error != nil {
				t.Errorf("  error: %v", r.Error)
			}
			for name, sub := range r.SubResults {
				if sub.Fail {
					t.Errorf("  case %q failed", name)
				}
			}
			if len(r.Output) > 0 {
				t.Logf("  output:\n%s", r.Output)
			}
		}
	}
	if ran == 0 {
		t.Fatal("no Rego test ran")
	}
	t.Logf("%d Rego tests ran", ran)
}
