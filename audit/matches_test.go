package audit_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
)

// joinKeys joins an entry's filter fields as a store's keys column does.
func joinKeys(e audit.Entry) []byte {
	k := e.Keys()
	return []byte(strings.Join(k[:], string(rune(audit.KeySeparator))))
}

func TestLeafMatches(t *testing.T) {
	plain := sampleEntry(41)
	empty := sampleEntry(42)
	empty.Released, empty.Withheld, empty.Reason = nil, nil, ""
	unicode := sampleEntry(43)
	unicode.Actor, unicode.Reason = "retailer:café", "déjà vu"
	escaped := sampleEntry(44)
	escaped.Resource = `order:"x"<y>`
	whole := sampleEntry(45)
	whole.Time = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // no fraction of a second

	for _, tc := range []struct {
		name string
		e    audit.Entry
		want bool // whether the fields can be shown equal without a full scan
	}{
		{"plain", plain, true},
		{"empty lists and reason", empty, true},
		{"non-ASCII fields", unicode, true},
		{"a field that needs escapes", escaped, false},
		{"a whole second", whole, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf, err := tc.e.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			keys, at := joinKeys(tc.e), tc.e.Time.UnixMicro()
			if got := audit.LeafMatches(leaf, tc.e.Index, at, keys); got != tc.want {
				t.Fatalf("LeafMatches = %v, want %v", got, tc.want)
			}
			// Whatever differs, it never answers true.
			if audit.LeafMatches(leaf, tc.e.Index+1, at, keys) || audit.LeafMatches(leaf, tc.e.Index, at+1, keys) {
				t.Error("matched another index or time")
			}
			sep := []byte{audit.KeySeparator}
			fields := bytes.Split(keys, sep)
			for i := range fields {
				for _, edit := range []func([]byte) []byte{
					func(b []byte) []byte { return append(bytes.Clone(b), 'x') },
					func(b []byte) []byte { return bytes.Clone(b)[:max(0, len(b)-1)] },
					func([]byte) []byte { return []byte(`\u0041`) },
				} {
					other := make([][]byte, len(fields))
					copy(other, fields)
					other[i] = edit(fields[i])
					if bytes.Equal(other[i], fields[i]) {
						continue
					}
					if audit.LeafMatches(leaf, tc.e.Index, at, bytes.Join(other, sep)) {
						t.Errorf("matched with field %s changed to %q", audit.KeyNames[i], other[i])
					}
				}
			}
			if audit.LeafMatches(leaf, tc.e.Index, at, append(bytes.Clone(keys), audit.KeySeparator)) ||
				audit.LeafMatches(leaf, tc.e.Index, at, bytes.Join(fields[:len(fields)-1], sep)) {
				t.Error("matched with a field too many or too few")
			}
		})
	}
}

// FuzzLeafMatches checks that LeafMatches is sound on canonical leaves:
// when it answers true, the leaf holds that index, time and those fields.
func FuzzLeafMatches(f *testing.F) {
	e := sampleEntry(7)
	leaf, _ := e.Canonical()
	f.Add(leaf, e.Index, e.Time.UnixMicro(), joinKeys(e))
	e.Outcome = "partial"
	f.Add(leaf, e.Index, e.Time.UnixMicro(), joinKeys(e))
	f.Add(leaf, uint64(70), e.Time.UnixMicro(), []byte(`\u0064ec_00000007`))
	f.Fuzz(func(t *testing.T, leaf []byte, idx uint64, at int64, keys []byte) {
		if !audit.LeafMatches(leaf, idx, at, keys) {
			return
		}
		var v audit.LeafView
		if audit.ScanLeaf(leaf, &v) != nil {
			return // only canonical leaves are in question
		}
		if v.Index != idx || v.TimeMicros != at {
			t.Fatalf("matched index %d time %d, the leaf holds %d %d", idx, at, v.Index, v.TimeMicros)
		}
		fields := bytes.Split(keys, []byte{audit.KeySeparator})
		raw := v.Keys()
		if len(fields) != len(raw) {
			t.Fatalf("matched %d fields", len(fields))
		}
		for i, r := range raw {
			if audit.Unquote(r) != string(fields[i]) {
				t.Fatalf("matched %s %q, the leaf holds %q", audit.KeyNames[i], fields[i], audit.Unquote(r))
			}
		}
	})
}
