package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
)

// A release's data life (retain_until) is an optional leaf field: set, it
// is encoded as encoding/json would, parsed back, scanned and matched;
// unset, the leaf is byte for byte what it was before the field existed.
func TestRetainUntilOptionalLeafField(t *testing.T) {
	e := sampleEntry(7)
	old, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(old, []byte("retain_until")) {
		t.Fatalf("an entry without a data life grew a retain_until: %s", old)
	}
	e.RetainUntil = time.Date(2027, 3, 1, 10, 0, 0, 123_456_789, time.FixedZone("IST", 19800))
	leaf, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	n := e
	n.Normalize()
	want, _ := json.Marshal(n)
	if !bytes.Equal(leaf, want) {
		t.Fatalf("Canonical =\n%s\nencoding/json =\n%s", leaf, want)
	}
	if !bytes.HasSuffix(leaf, []byte(`,"retain_until":"2027-03-01T04:30:00.123456Z"}`)) {
		t.Fatalf("leaf does not end with the data life: %s", leaf)
	}
	if !referenceCanonical(leaf) {
		t.Fatal("leaf is not canonical by the encoding/json definition")
	}
	back, err := audit.ParseEntry(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !back.RetainUntil.Equal(n.RetainUntil) {
		t.Fatalf("retain_until parsed as %v, want %v", back.RetainUntil, n.RetainUntil)
	}
	var v audit.LeafView
	if err := audit.ScanLeaf(leaf, &v); err != nil || !v.HasRetainUntil || v.RetainUntilMicros != n.RetainUntil.UnixMicro() {
		t.Fatalf("ScanLeaf = %v, view %+v", err, v)
	}
	if err := audit.ScanLeaf(old, &v); err != nil || v.HasRetainUntil {
		t.Fatalf("ScanLeaf(old leaf) = %v, has retain_until %v", err, v.HasRetainUntil)
	}
	if !audit.LeafMatches(leaf, e.Index, n.Time.UnixMicro(), joinKeys(n)) {
		t.Fatal("LeafMatches refuses a leaf with a data life")
	}
	for _, bad := range []string{
		strings.Replace(string(leaf), `.123456Z"}`, `.1234560Z"}`, 1),
		strings.Replace(string(leaf), `Z"}`, `+00:00"}`, 1),
		strings.Replace(string(leaf), `"retain_until"`, `"retain_untl"`, 1),
		strings.Replace(string(leaf), `"}`, `"`+`,"retain_until":"2027-03-01T04:30:00Z"}`, 1),
		strings.Replace(string(leaf), `,"retain_until":"2027-03-01T04:30:00.123456Z"`, `,"retain_until":""`, 1),
	} {
		if _, err := audit.ParseEntry([]byte(bad)); !errors.Is(err, audit.ErrNotCanonical) {
			t.Errorf("ParseEntry(%s) = %v, want ErrNotCanonical", bad, err)
		}
	}
}
