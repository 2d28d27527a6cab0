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

// referenceCanonical is the definition of a canonical leaf through
// encoding/json: b decodes (strictly) to an entry whose normalized
// json.Marshal encoding is b itself.
func referenceCanonical(b []byte) bool {
	var e audit.Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return false
	}
	e.Normalize()
	out, err := json.Marshal(e)
	return err == nil && bytes.Equal(out, b)
}

func TestCanonicalMatchesEncodingJSON(t *testing.T) {
	tricky := audit.Entry{
		Index:      1<<64 - 1,
		Time:       time.Date(2026, 2, 28, 23, 59, 59, 120_000_999, time.FixedZone("IST", 19800)),
		DecisionID: `dec_"quoted"\back`,
		Actor:      "partner:<script>&amp;",
		Action:     "release\n\t\r\b\f\x00\x1f\x7f",
		Purpose:    "line\u2028sep\u2029para",
		Subject:    "sub_é漢字🙂",
		Resource:   "order:ord_1",
		Released:   []string{"z", "a", "a", "<b>"},
		Withheld:   nil,
		Outcome:    audit.OutcomePartial,
	}
	legal := sampleEntry(7)
	legal.RecipientRole, legal.Jurisdiction, legal.TransferBasis = "processor", "IN", "scc"
	partial := sampleEntry(8)
	partial.Jurisdiction = "DE"
	for name, e := range map[string]audit.Entry{"sample": sampleEntry(42), "tricky": tricky, "zero": {},
		"legal": legal, "partial legal": partial} {
		t.Run(name, func(t *testing.T) {
			got, err := e.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			n := e
			n.Released = append([]string(nil), e.Released...)
			n.Normalize()
			want, err := json.Marshal(n)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Canonical =\n%s\nencoding/json =\n%s", got, want)
			}
			back, err := audit.ParseEntry(got)
			if err != nil {
				t.Fatalf("ParseEntry(Canonical) = %v", err)
			}
			again, _ := back.Canonical()
			if !bytes.Equal(again, got) {
				t.Fatal("round trip changed the leaf")
			}
		})
	}
}

func TestCanonicalDoesNotModifyEntry(t *testing.T) {
	e := sampleEntry(1)
	e.Released = []string{"z", "a"}
	if _, err := e.Canonical(); err != nil {
		t.Fatal(err)
	}
	if e.Released[0] != "z" {
		t.Error("Canonical sorted the caller's slice")
	}
}

func TestNormalizeRepairsInvalidUTF8(t *testing.T) {
	e := sampleEntry(3)
	e.Reason = "bad \xff\xfe byte"
	e.Released = []string{"\xc3"}
	leaf, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.ParseEntry(leaf)
	if err != nil {
		t.Fatalf("leaf of an entry with invalid UTF-8 does not parse: %v", err)
	}
	if got.Reason != "bad \uFFFD byte" || got.Released[0] != "\uFFFD" {
		t.Errorf("got %q %q", got.Reason, got.Released)
	}
}

func TestParseEntryRejectsNonCanonical(t *testing.T) {
	good, err := sampleEntry(7).Canonical()
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	rep := func(old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("sample leaf lacks %q", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	tests := []struct{ name, leaf string }{
		{"empty", ""},
		{"not json", "hello"},
		{"trailing newline", s + "\n"},
		{"trailing garbage", s + "{}"},
		{"leading space", " " + s},
		{"space after colon", rep(`"index":7`, `"index": 7`)},
		{"leading zero index", rep(`"index":7`, `"index":07`)},
		{"negative index", rep(`"index":7`, `"index":-7`)},
		{"float index", rep(`"index":7`, `"index":7.0`)},
		{"index overflow", rep(`"index":7`, `"index":18446744073709551616`)},
		{"unknown field", rep(`"index":7,`, `"index":7,"extra":1,`)},
		{"missing field", rep(`,"reason":""`, ``)},
		{"duplicate field", rep(`"index":7,`, `"index":7,"index":7,`)},
		{"key order", rep(`"actor":"retailer:cli_1","action":"release"`, `"action":"release","actor":"retailer:cli_1"`)},
		{"upper-case key", rep(`"actor"`, `"Actor"`)},
		{"unsorted list", rep(`["delivery.postal_code","items"]`, `["items","delivery.postal_code"]`)},
		{"null list", rep(`"withheld":["customer.phone"]`, `"withheld":null`)},
		{"space in list", rep(`["delivery.postal_code","items"]`, `["delivery.postal_code", "items"]`)},
		{"non-UTC time", rep(`12:00:00.0105Z`, `17:30:00.0105+05:30`)},
		{"trailing zero in fraction", rep(`12:00:00.0105Z`, `12:00:00.01050Z`)},
		{"nanoseconds", rep(`12:00:00.0105Z`, `12:00:00.010500001Z`)},
		{"lower-case z", rep(`.0105Z`, `.0105z`)},
		{"day 30 of February", rep(`2026-03-01`, `2026-02-30`)},
		{"hour 24", rep(`T12:`, `T24:`)},
		{"leap second", rep(`:00.0105Z`, `:60.0105Z`)},
		{"string time", rep(`"time":"2026-03-01T12:00:00.0105Z"`, `"time":1772366400`)},
		{"escaped slash", rep(`order:ord_000007`, `order:ord\/000007`)},
		{"unicode escape of plain char", rep(`"release"`, `"\u0072elease"`)},
		{"upper-case hex escape", rep(`"release"`, `"rel\u003Cease"`)},
		{"literal <", rep(`"release"`, `"rel<ease"`)},
		{"literal &", rep(`"release"`, `"rel&ease"`)},
		{"literal newline", rep(`"release"`, "\"rel\nease\"")},
		{"literal U+2028", rep(`"release"`, "\"rel\u2028ease\"")},
		{"escaped replacement char", rep(`"release"`, `"rel\ufffdease"`)},
		{"invalid UTF-8", rep(`"release"`, "\"rel\xffease\"")},
		{"surrogate escape", rep(`"release"`, `"rel\ud83dease"`)},
		{"unterminated string", `{"index":7,"time":"2026-03-01T12:00:00Z","decision_id":"dec`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.ParseEntry([]byte(tc.leaf))
			if !errors.Is(err, audit.ErrNotCanonical) {
				t.Fatalf("ParseEntry = %v, want ErrNotCanonical", err)
			}
			var v audit.LeafView
			if err := audit.ScanLeaf([]byte(tc.leaf), &v); err == nil {
				t.Fatal("ScanLeaf accepted it")
			}
			if referenceCanonical([]byte(tc.leaf)) {
				t.Fatal("the encoding/json reference accepts it: the test case is wrong")
			}
		})
	}
}

func TestScanLeafFields(t *testing.T) {
	e := sampleEntry(9)
	e.Reason = "needs <escape>"
	leaf, _ := e.Canonical()
	var v audit.LeafView
	if err := audit.ScanLeaf(leaf, &v); err != nil {
		t.Fatal(err)
	}
	if v.Index != 9 || v.TimeMicros != e.Time.UnixMicro() {
		t.Errorf("index/time = %d/%d", v.Index, v.TimeMicros)
	}
	checks := []struct {
		raw  []byte
		want string
	}{{v.DecisionID, e.DecisionID}, {v.Actor, e.Actor}, {v.Action, e.Action}, {v.Purpose, e.Purpose},
		{v.Subject, e.Subject}, {v.Resource, e.Resource}, {v.Outcome, e.Outcome}, {v.Reason, e.Reason},
		{v.PolicyRevision, e.PolicyRevision}}
	for _, c := range checks {
		if !audit.RawEqual(c.raw, c.want) {
			t.Errorf("field %q does not equal %q", c.raw, c.want)
		}
	}
	if audit.RawEqual(v.Reason, "needs \\u003cescape>") || audit.RawEqual(v.Actor, "x") {
		t.Error("RawEqual matched a different value")
	}
}

func TestValidate(t *testing.T) {
	ok := sampleEntry(1)
	tests := []struct {
		name   string
		mutate func(*audit.Entry)
		valid  bool
	}{
		{"sample", func(*audit.Entry) {}, true},
		{"no decision id", func(e *audit.Entry) { e.DecisionID = "" }, false},
		{"zero time", func(e *audit.Entry) { e.Time = time.Time{} }, false},
		{"year 10000", func(e *audit.Entry) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
		{"huge reason", func(e *audit.Entry) { e.Reason = strings.Repeat("x", audit.MaxReasonLen+1) }, false},
		{"long actor", func(e *audit.Entry) { e.Actor = strings.Repeat("x", audit.MaxFieldSize+1) }, false},
		{"NUL in subject", func(e *audit.Entry) { e.Subject = "sub_\x00" }, false},
		{"NUL in a field name", func(e *audit.Entry) { e.Withheld = []string{"a\x00"} }, false},
		{"unit separator in actor", func(e *audit.Entry) { e.Actor = "retailer:\x1fcli" }, false},
		{"unit separator in outcome", func(e *audit.Entry) { e.Outcome = "released\x1f" }, false},
		{"unit separator in the reason", func(e *audit.Entry) { e.Reason = "a\x1fb" }, true},
		{"unit separator in a field name", func(e *audit.Entry) { e.Withheld = []string{"a\x1fb"} }, true},
		{"too many field names", func(e *audit.Entry) { e.Released = make([]string, audit.MaxFields+1) }, false},
		{"longest fields", func(e *audit.Entry) {
			e.Actor = strings.Repeat("a", audit.MaxFieldSize)
			e.Reason = strings.Repeat("r", audit.MaxReasonLen)
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.mutate(&e)
			err := e.Validate()
			if (err == nil) != tc.valid {
				t.Fatalf("Validate = %v, valid = %v", err, tc.valid)
			}
			if err != nil && !errors.Is(err, audit.ErrInvalidEntry) {
				t.Fatalf("error %v does not wrap ErrInvalidEntry", err)
			}
		})
	}
}

// TestLegalFieldsAreOptional: the recipient's legal fields are encoded only
// when set, so a leaf written before they existed is byte for byte what it
// was; an empty one written out, or one out of order, is not canonical.
func TestLegalFieldsAreOptional(t *testing.T) {
	e := sampleEntry(3)
	old, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(old, []byte("recipient_role")) || !bytes.HasSuffix(old, []byte(`"policy_revision":"`+e.PolicyRevision+`"}`)) {
		t.Fatalf("a leaf without legal fields changed: %s", old)
	}
	e.RecipientRole, e.Jurisdiction, e.TransferBasis = "controller", "IN", "none"
	leaf, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	back, err := audit.ParseEntry(leaf)
	if err != nil || back.RecipientRole != "controller" || back.Jurisdiction != "IN" || back.TransferBasis != "none" {
		t.Fatalf("ParseEntry = %+v, %v", back, err)
	}
	body := string(old[:len(old)-1])
	for _, bad := range []string{
		body + `,"recipient_role":""}`,
		body + `,"jurisdiction":"IN","recipient_role":"controller"}`,
		body + `,"transfer_basis":"scc","transfer_basis":"scc"}`,
		body + `,"jurisdiction":"IN"` + `,"other":"x"}`,
	} {
		if _, err := audit.ParseEntry([]byte(bad)); !errors.Is(err, audit.ErrNotCanonical) {
			t.Errorf("ParseEntry(%s) = %v; want ErrNotCanonical", bad[len(body):], err)
		}
	}
}
