package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// TestOptionalConsentFields: notice_sha256 and lang are in the leaf only
// when set, so a leaf written before they existed encodes to the same
// bytes; with them, the leaf round-trips, equals encoding/json's output,
// and LeafMatches still checks the filter fields.
func TestOptionalConsentFields(t *testing.T) {
	base := Entry{Index: 7, Time: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), DecisionID: "dec_1",
		Actor: "shopper:chat", Action: "consent", Purpose: "notice", Subject: "sub_x", Resource: "consent:cna_1",
		Outcome: OutcomeDone, Reason: "consent recorded", PolicyRevision: "rev"}
	old, err := base.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	const legacy = `{"index":7,"time":"2026-12-04T10:00:00Z","decision_id":"dec_1","actor":"shopper:chat","action":"consent","purpose":"notice","subject":"sub_x","resource":"consent:cna_1","released":[],"withheld":[],"outcome":"done","reason":"consent recorded","policy_revision":"rev"}`
	if string(old) != legacy {
		t.Fatalf("a leaf without the optional fields changed:\n%s", old)
	}
	for name, e := range map[string]Entry{
		"both":      {NoticeSHA256: "ab12", Lang: "hi"},
		"lang only": {Lang: "en"},
		"hash only": {NoticeSHA256: "ab12"},
	} {
		t.Run(name, func(t *testing.T) {
			x := base
			x.NoticeSHA256, x.Lang = e.NoticeSHA256, e.Lang
			leaf, err := x.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			n := x
			n.Normalize()
			want, _ := json.Marshal(n)
			if !bytes.Equal(leaf, want) {
				t.Errorf("canonical %s\nencoding/json %s", leaf, want)
			}
			back, err := ParseEntry(leaf)
			if err != nil || back.NoticeSHA256 != x.NoticeSHA256 || back.Lang != x.Lang {
				t.Fatalf("ParseEntry = %+v, %v", back, err)
			}
			k := x.Keys()
			var keys []byte
			for i, f := range k {
				if i > 0 {
					keys = append(keys, KeySeparator)
				}
				keys = append(keys, f...)
			}
			if !LeafMatches(leaf, x.Index, x.Time.UnixMicro(), keys) {
				t.Error("LeafMatches rejects a leaf with the optional fields")
			}
		})
	}
	for name, leaf := range map[string]string{
		"empty lang":    legacy[:len(legacy)-1] + `,"lang":""}`,
		"wrong order":   legacy[:len(legacy)-1] + `,"lang":"hi","notice_sha256":"ab"}`,
		"unknown field": legacy[:len(legacy)-1] + `,"langs":"hi"}`,
	} {
		if _, err := ParseEntry([]byte(leaf)); !errors.Is(err, ErrNotCanonical) {
			t.Errorf("%s: ParseEntry = %v; want ErrNotCanonical", name, err)
		}
	}
}
