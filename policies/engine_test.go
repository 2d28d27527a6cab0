package policies

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sieve-broker/sieve/broker"
)

// defaultEngine compiles the embedded tree once for the whole test binary.
var defaultEngine = sync.OnceValues(func() (*Engine, error) { return Default(context.Background()) })

func engine(t testing.TB) *Engine {
	t.Helper()
	e, err := defaultEngine()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	return e
}

// expectedRule is a decision table's verdict on one field.
type expectedRule struct {
	Allow     bool             `json:"allow"`
	Transform broker.Transform `json:"transform,omitempty"`
	Reason    string           `json:"reason,omitempty"`
}

type decisionCase struct {
	Name   string                  `json:"name"`
	Input  broker.PolicyInput      `json:"input"`
	Allow  bool                    `json:"allow"`
	Reason string                  `json:"reason"`
	Fields map[string]expectedRule `json:"fields"` // nil for a denial: all withheld with Reason
}

// TestDecisionTable runs testdata/decisions.json through the real engine.
func TestDecisionTable(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "decisions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Cases []decisionCase `json:"cases"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&table); err != nil {
		t.Fatalf("decisions.json: %v", err)
	}
	if len(table.Cases) == 0 {
		t.Fatal("decisions.json has no cases")
	}
	e := engine(t)
	seen := map[string]bool{}
	for _, c := range table.Cases {
		if seen[c.Name] {
			t.Fatalf("duplicate case name %q", c.Name)
		}
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			got, err := e.Evaluate(context.Background(), c.Input)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if got.Allow != c.Allow || got.Reason != c.Reason {
				t.Errorf("decision = allow %v, reason %q; want allow %v, reason %q", got.Allow, got.Reason, c.Allow, c.Reason)
			}
			want := c.Fields
			if want == nil {
				if c.Allow {
					t.Fatal("bad case: an allowed case must list its fields")
				}
				want = map[string]expectedRule{}
				for _, f := range c.Input.Fields {
					want[f] = expectedRule{Allow: false, Reason: c.Reason}
				}
			}
			asked := map[string]bool{}
			for _, f := range c.Input.Fields {
				asked[f] = true
				if _, ok := want[f]; !ok {
					t.Fatalf("bad case: no expectation for asked field %q", f)
				}
			}
			if len(want) != len(asked) {
				t.Fatalf("bad case: expectations for fields not asked: %v", slices.Sorted(maps.Keys(want)))
			}
			if len(got.Fields) != len(asked) {
				t.Errorf("verdicts for %v; want exactly the asked fields", slices.Sorted(maps.Keys(got.Fields)))
			}
			for f, w := range want {
				g, ok := got.Fields[f]
				switch {
				case !ok:
					t.Errorf("%s: no verdict", f)
				case w.Allow && (!g.Allow || g.Transform != w.Transform):
					t.Errorf("%s: got %+v; want released as %s", f, g, w.Transform)
				case !w.Allow && (g.Allow || g.Transform != broker.TransformDrop || g.Reason != w.Reason):
					t.Errorf("%s: got %+v; want withheld (drop) because %q", f, g, w.Reason)
				}
			}
		})
	}
}

// TestInputValueIsTheJSONDocument holds the hand-built AST input to the
// document OPA would build from the JSON of the input, so that the fast path
// and the Rego tests (which use JSON inputs) decide on the same thing.
func TestInputValueIsTheJSONDocument(t *testing.T) {
	for name, in := range map[string]broker.PolicyInput{
		"full": {
			Party: broker.PolicyParty{ID: "ret_1", Kind: broker.KindRetailer, Role: "processor", Agreement: "DPA-1",
				AgreementExpires: "2027-01-31", Jurisdiction: "IN", TransferBasis: "scc"},
			Purpose: broker.PurposeOrderFulfilment,
			Scopes:  []string{"orders:read"}, Consent: broker.Consent{Notice: true, Analytics: true},
			State: "placed", Fields: []string{"order.id", "customer.ref"},
			Subject: broker.PolicySubject{Jurisdiction: "DE"}, Today: "2026-12-04",
		},
		"empty lists": {Scopes: []string{}, Fields: []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ast.ValueFromReader(strings.NewReader(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if got := inputValue(in); got.Compare(want) != 0 {
				t.Errorf("inputValue = %v\nwant %v", got, want)
			}
		})
	}
	// The one intended difference: nil lists are [] rather than null, so
	// that `some x in input.scopes` never meets a null.
	nilLists := inputValue(broker.PolicyInput{}).(ast.Object)
	for _, k := range []*ast.Term{keyScopes, keyFields} {
		if got := nilLists.Get(k).Value; got.Compare(ast.NewArray()) != 0 {
			t.Errorf("nil %v = %v; want []", k, got)
		}
	}
}

func TestDefault(t *testing.T) {
	e := engine(t)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(e.Revision()) {
		t.Errorf("Revision() = %q; want 64 hex digits", e.Revision())
	}
	again, err := Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again.Revision() != e.Revision() {
		t.Errorf("Revision is not stable: %s then %s", e.Revision(), again.Revision())
	}
}

func TestData(t *testing.T) {
	e := engine(t)
	d := e.Data()

	if got := slices.Sorted(maps.Keys(d.Purposes)); !slices.Equal(got, slices.Sorted(slices.Values(broker.Purposes))) {
		t.Errorf("purposes = %v; want the broker's %v", got, broker.Purposes)
	}
	order := []string{"chat", "customer.phone", "customer.profile_name", "customer.ref", "delivery.address",
		"delivery.building", "delivery.city", "delivery.house", "delivery.landmark", "delivery.locality",
		"delivery.location", "delivery.postal_code", "delivery.slot", "delivery.state", "items", "order.created_at", "order.id",
		"order.status", "payment.reference_id", "payment.status", "total"}
	if got := d.FieldsOf("order"); !slices.Equal(got, order) {
		t.Errorf("order fields = %v\nwant %v", got, order)
	}
	if got := d.FieldsOf("status_update"); len(got) != 8 {
		t.Errorf("status_update fields = %v; want 8", got)
	}
	bases := map[broker.Purpose]string{
		broker.PurposeOrderFulfilment: "contract", broker.PurposeDelivery: "contract", broker.PurposePayment: "contract",
		broker.PurposeSupport: "contract", broker.PurposeMarketing: "consent", broker.PurposeAnalytics: "consent",
	}
	for p, want := range bases {
		if got := d.Purposes[p].LawfulBasis; got != want {
			t.Errorf("%s lawful basis = %q; want %q", p, got, want)
		}
	}
	if got := d.Purposes[broker.PurposeDelivery].States; !slices.Equal(got, []string{"out_for_delivery"}) {
		t.Errorf("delivery states = %v", got)
	}
	if got := d.Purposes[broker.PurposeOrderFulfilment].Parties[broker.KindRetailer].Fields["customer.ref"]; got != broker.TransformPseudonym {
		t.Errorf("retailer customer.ref transform = %q", got)
	}
	if got := d.Purposes[broker.PurposeMarketing].Consent; !slices.Equal(got, []string{"notice", "marketing"}) {
		t.Errorf("marketing consent = %v", got)
	}

	for _, c := range []struct {
		field, category string
		period          time.Duration
	}{
		{"customer.phone", "identity", 1095 * 24 * time.Hour},
		{"order.id", "orders", 1095 * 24 * time.Hour},
		{"delivery.address", "addresses", 1095 * 24 * time.Hour},
		{"chat", "chat", 90 * 24 * time.Hour},
		{"staff_name", "retailer_internal", 0},
	} {
		cat, ok := d.CategoryOf(c.field)
		if !ok || cat != c.category {
			t.Errorf("CategoryOf(%q) = %q, %v; want %q", c.field, cat, ok, c.category)
		}
		if got := e.RetentionFor(cat); got != c.period {
			t.Errorf("RetentionFor(%q) = %v; want %v", cat, got, c.period)
		}
	}
	if got := e.RetentionFor("inbound_webhooks"); got != 30*24*time.Hour {
		t.Errorf("RetentionFor(inbound_webhooks) = %v", got)
	}
	if got := e.RetentionFor("consent_records"); got != 1095*24*time.Hour {
		t.Errorf("RetentionFor(consent_records) = %v", got)
	}
	if got := e.RetentionFor("no such category"); got != 0 {
		t.Errorf("RetentionFor(unknown) = %v; want 0", got)
	}

	// Data returns a copy: changing it changes nothing in the engine.
	d.Purposes[broker.PurposeOrderFulfilment].Parties[broker.KindRetailer].Fields["customer.phone"] = broker.TransformKeep
	d.Retention["chat"] = Retention{Days: 9999}
	if _, ok := e.Data().Purposes[broker.PurposeOrderFulfilment].Parties[broker.KindRetailer].Fields["customer.phone"]; ok {
		t.Error("Data() shares its maps with the engine")
	}
	if e.RetentionFor("chat") != 90*24*time.Hour {
		t.Error("Data() shares its retention map with the engine")
	}
}

// treeWith returns the embedded tree with the given files replaced (a nil
// body deletes the file).
func treeWith(t testing.TB, changes map[string][]byte) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(FS(), ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := fs.ReadFile(FS(), p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range changes {
		if b == nil {
			delete(m, p)
			continue
		}
		m[p] = &fstest.MapFile{Data: b}
	}
	return m
}

// editData returns sieve/data.json changed by edit.
func editData(t testing.TB, edit func(d map[string]any)) []byte {
	t.Helper()
	b, err := fs.ReadFile(FS(), "sieve/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	edit(d)
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dig(d map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		d = d[k].(map[string]any)
	}
	return d
}

func TestNewRejectsBrokenTrees(t *testing.T) {
	for _, c := range []struct {
		name    string
		changes map[string][]byte
		want    string // a regexp the error must match
	}{
		{
			name:    "syntax error",
			changes: map[string][]byte{"sieve/release/release.rego": []byte("package sieve.release\n\ndecision := {\"allow\": true\n")},
			want:    `sieve/release/release\.rego:\d+: rego_parse_error`,
		},
		{
			name:    "rego v0 syntax",
			changes: map[string][]byte{"sieve/release/release.rego": []byte("package sieve.release\n\ndecision = x { x := 1 }\n")},
			want:    `rego_parse_error: .*if. keyword is required`,
		},
		{
			name:    "no decision rule",
			changes: map[string][]byte{"sieve/release/release.rego": []byte("package sieve.release\n\nallow := false\n")},
			want:    `no rule sieve\.release\.decision`,
		},
		{
			name:    "decision in another package",
			changes: map[string][]byte{"sieve/release/release.rego": []byte("package sieve.releases\n\ndecision := {}\n")},
			want:    `no rule sieve\.release\.decision`,
		},
		{
			name:    "no modules at all",
			changes: map[string][]byte{"sieve/release/release.rego": nil, "sieve/release/release_test.rego": nil, "sieve/data_test.rego": nil},
			want:    `no \.rego modules`,
		},
		{
			name:    "no data",
			changes: map[string][]byte{"sieve/data.json": nil},
			want:    `no policy data: data\.sieve is missing`,
		},
		{
			name:    "data is not JSON",
			changes: map[string][]byte{"sieve/data.json": []byte(`{"purposes": `)},
			want:    `sieve/data\.json: `,
		},
		{
			name:    "data is not an object",
			changes: map[string][]byte{"sieve/data.json": []byte(`[1, 2]`)},
			want:    `sieve/data\.json: top level is not a JSON object`,
		},
		{
			name: "mistyped key",
			changes: map[string][]byte{"sieve/data.json": editData(t, func(d map[string]any) {
				p := dig(d, "purposes", "marketing")
				p["consnet"] = p["consent"]
				delete(p, "consent")
			})},
			want: `unknown field "consnet"`,
		},
		{
			name: "purpose without a data life",
			changes: map[string][]byte{"sieve/data.json": editData(t, func(d map[string]any) {
				delete(dig(d, "purposes", "delivery"), "data_life_days")
			})},
			want: `purposes.delivery: data_life_days must be 1 to 3650`,
		},
		{
			name: "internal field granted",
			changes: map[string][]byte{"sieve/data.json": editData(t, func(d map[string]any) {
				dig(d, "purposes", "order_fulfilment", "parties", "shopper", "fields")["staff_name"] = "keep"
			})},
			want: `"staff_name" is a retailer-internal field and may never be released`,
		},
		{
			name: "every problem at once",
			changes: map[string][]byte{"sieve/data.json": editData(t, func(d map[string]any) {
				dig(d, "purposes", "payment", "parties", "payments", "fields")["customer.phone"] = "hash"
				dig(d, "purposes", "payment", "parties", "payments", "fields")["customer.iban"] = "keep"
				dig(d, "purposes", "analytics")["consent"] = []any{"analytics"}
				dig(d, "purposes", "support", "parties", "retailer")["scopes"] = []any{"orders:everything"}
				delete(dig(d, "purposes", "delivery", "parties", "logistics"), "scopes")
				delete(dig(d, "retention"), "chat")
			})},
			// Sorted: fields before purposes, purposes by name.
			want: `(?s)fields.chat: category "chat" has no retention period.*` +
				`fields.note_to_customer: category "chat" has no retention period.*` +
				`purposes.analytics: consent must include "notice".*` +
				`purposes.delivery.parties.logistics: no scopes.*` +
				`purposes.payment.parties.payments.fields: "customer.iban" is not in the field catalogue.*` +
				`purposes.payment.parties.payments.fields.customer.phone: transform "hash" does not release.*` +
				`purposes.support.parties.retailer: unknown scope "orders:everything"`,
		},
		{
			name: "non-deterministic built-in",
			changes: map[string][]byte{"sieve/release/extra.rego": []byte(
				"package sieve.release\n\n_now := time.now_ns()\n\nlate if _now > 0\n")},
			want: `compiling the policy: .*time\.now_ns`,
		},
		{
			name: "network built-in",
			changes: map[string][]byte{"sieve/release/extra.rego": []byte(
				"package sieve.release\n\nremote := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1\"})\n")},
			want: `compiling the policy: .*http\.send`,
		},
		{
			name: "strict compile: unused import",
			changes: map[string][]byte{"sieve/release/extra.rego": []byte(
				"package sieve.release\n\nimport data.sieve.fields\n\nextra := 1\n")},
			want: `compiling the policy: .*import data\.sieve\.fields unused`,
		},
		{
			name: "decision of the wrong shape",
			changes: map[string][]byte{"sieve/release/release.rego": []byte(
				"package sieve.release\n\ndecision := {\"allow\": \"yes\", \"reason\": \"\", \"fields\": {}}\n")},
			want: `probe decision failed: policies: decision is malformed: decision\.allow is string, not a boolean`,
		},
		{
			name: "decision undefined",
			changes: map[string][]byte{"sieve/release/release.rego": []byte(
				"package sieve.release\n\ndecision := {\"allow\": false, \"reason\": \"\", \"fields\": {}} if input.purpose == \"never\"\n")},
			want: `probe decision failed: policies: decision is undefined`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := New(context.Background(), treeWith(t, c.changes))
			if err == nil {
				t.Fatalf("New succeeded (revision %s); want an error matching %s", e.Revision(), c.want)
			}
			if !regexp.MustCompile(c.want).MatchString(err.Error()) {
				t.Errorf("error:\n%v\nwant a match for %s", err, c.want)
			}
		})
	}
}

// failingPolicy is a policy that loads (the probe asks for order fulfilment)
// but misbehaves for other purposes: a built-in error for payment, an
// undefined decision for support, the wrong shape for marketing.
const failingPolicy = `package sieve.release

_all := {f: {"allow": true, "transform": "keep", "reason": ""} | some f in input.fields}

decision := {"allow": true, "reason": "", "fields": _all} if input.purpose == "order_fulfilment"

decision := {"allow": to_number(input.state) > 0, "reason": "", "fields": _all} if input.purpose == "payment"

decision := {"allow": true, "reason": "", "fields": {"order.id": "keep"}} if input.purpose == "marketing"
`

func TestFailClosed(t *testing.T) {
	e, err := New(context.Background(), treeWith(t, map[string][]byte{"sieve/release/release.rego": []byte(failingPolicy)}))
	if err != nil {
		t.Fatal(err)
	}
	pseudo, err := broker.NewPseudonymizer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := broker.NewReleaser(e, pseudo, nil)
	rec := order()
	for _, c := range []struct {
		purpose broker.Purpose
		err     error // nil: any evaluation error
	}{
		{broker.PurposePayment, nil},
		{broker.PurposeSupport, ErrUndefined},
		{broker.PurposeMarketing, ErrMalformed},
	} {
		t.Run(string(c.purpose), func(t *testing.T) {
			req := broker.Request{
				Party:   broker.Party{ID: "ret_1", Kind: broker.KindRetailer, Scopes: broker.AllScopes},
				Purpose: c.purpose, State: "placed", Consent: broker.Consent{Notice: true, Marketing: true},
				Fields: rec.SortedFields(), Record: rec,
			}
			_, err := e.Evaluate(context.Background(), policyInput(req))
			if err == nil || (c.err != nil && !errors.Is(err, c.err)) {
				t.Fatalf("Evaluate error = %v; want %v", err, c.err)
			}
			d := r.Decide(context.Background(), req)
			if d.Outcome != "denied" || d.Reason != broker.ReasonPolicyError || len(d.Released) != 0 {
				t.Errorf("Decide = %s %q, released %v; want denied %q, nothing released",
					d.Outcome, d.Reason, d.Released, broker.ReasonPolicyError)
			}
			if len(d.Withheld) != len(req.Fields) {
				t.Errorf("withheld %d fields; want all %d", len(d.Withheld), len(req.Fields))
			}
		})
	}
	// The same engine still answers where its policy works.
	d := r.Decide(context.Background(), broker.Request{
		Party: broker.Party{ID: "ret_1", Kind: broker.KindRetailer}, Purpose: broker.PurposeOrderFulfilment,
		Fields: []string{"order.id"}, Record: rec,
	})
	if d.Outcome != "released" {
		t.Errorf("order_fulfilment through the failing policy = %s %q; want released", d.Outcome, d.Reason)
	}
}

func TestEvaluateHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := policyInput(broker.Request{Party: broker.Party{ID: "r", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}},
		Purpose: broker.PurposeOrderFulfilment, Consent: broker.Consent{Notice: true}, Fields: []string{"order.id"}})
	if _, err := engine(t).Evaluate(ctx, in); err == nil {
		t.Error("Evaluate with a cancelled context succeeded; want an error (and so a denial)")
	}
}

// TestLoadOverride is BROKER_POLICY_DIR: a directory that replaces the
// embedded tree.
func TestLoadOverride(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.CopyFS(dir, FS()); err != nil {
		t.Fatal(err)
	}
	same, err := Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if same.Revision() != engine(t).Revision() {
		t.Errorf("a copy of the embedded tree has revision %s; want the embedded %s", same.Revision(), engine(t).Revision())
	}

	// Test files, testdata and hidden directories do not change the revision.
	for p, body := range map[string]string{
		"sieve/release/more_test.rego": "package sieve.release_test\n\ntest_more if true\n",
		"testdata/data.json":           `{"sieve": {"purposes": {}}}`,
		".git/data.json":               `{"x": 1}`,
		"README.md":                    "policies\n",
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ignored, err := Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if ignored.Revision() != same.Revision() {
		t.Error("tests, testdata, hidden directories or other files changed the revision")
	}

	// Withdraw payment.status from the retailer: the override takes effect.
	data := editData(t, func(d map[string]any) {
		delete(dig(d, "purposes", "order_fulfilment", "parties", "retailer", "fields"), "payment.status")
	})
	if err := os.WriteFile(filepath.Join(dir, "sieve", "data.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	over, err := Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if over.Revision() == same.Revision() {
		t.Error("changing data.json did not change the revision")
	}
	in := broker.PolicyInput{Party: broker.PolicyParty{ID: "r", Kind: broker.KindRetailer}, Purpose: broker.PurposeOrderFulfilment,
		Scopes: []string{"orders:read"}, Consent: broker.Consent{Notice: true}, State: "placed", Fields: []string{"payment.status", "order.id"}}
	for name, c := range map[string]struct {
		e    *Engine
		want bool
	}{"embedded": {engine(t), true}, "override": {over, false}} {
		d, err := c.e.Evaluate(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Fields["payment.status"].Allow; got != c.want {
			t.Errorf("%s: payment.status allowed = %v; want %v", name, got, c.want)
		}
	}

	// The override replaces the embedded tree: a broken override is an
	// error, never a silent fallback to the embedded policy.
	if err := os.WriteFile(filepath.Join(dir, "sieve", "release", "release.rego"), []byte("package sieve.release\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Load of a broken dir = %v; want an error naming %s", err, dir)
	}
	if _, err := Load(ctx, filepath.Join(dir, "missing")); err == nil {
		t.Error("Load of a missing dir succeeded")
	}
	if _, err := Load(ctx, filepath.Join(dir, "README.md")); err == nil {
		t.Error("Load of a file succeeded")
	}
	if e, err := Load(ctx, ""); err != nil || e.Revision() != engine(t).Revision() {
		t.Errorf("Load(\"\") = %v; want the embedded tree", err)
	}
}

// TestRegoTestsOfAnOverride shows Test catching an override that breaks a
// privacy invariant, before it is deployed.
func TestRegoTestsOfAnOverride(t *testing.T) {
	fsys := treeWith(t, map[string][]byte{"sieve/data.json": editData(t, func(d map[string]any) {
		dig(d, "purposes", "order_fulfilment", "parties", "retailer", "fields")["customer.phone"] = "keep"
	})})
	// It still loads: structurally the data is fine...
	if _, err := New(context.Background(), fsys); err != nil {
		t.Fatal(err)
	}
	// ...but the Rego tests fail.
	results, err := Test(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, r := range results {
		if !r.Pass() {
			failed = append(failed, r.Name)
		}
	}
	if !slices.Contains(failed, "test_phone_reaches_the_retail_side_masked_at_most") {
		t.Errorf("failed tests = %v; want test_phone_reaches_the_retail_side_masked_at_most among them", failed)
	}
	if _, err := Test(context.Background(), treeWith(t, map[string][]byte{
		"sieve/release/release_test.rego": nil, "sieve/data_test.rego": nil,
	})); err == nil {
		t.Error("Test of a tree without tests succeeded")
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	e := engine(t)
	inputs := []broker.PolicyInput{
		{Party: broker.PolicyParty{ID: "r", Kind: broker.KindRetailer}, Purpose: broker.PurposeOrderFulfilment,
			Scopes: []string{"orders:read"}, Consent: broker.Consent{Notice: true}, State: "placed", Fields: orderFields},
		{Party: broker.PolicyParty{ID: "l", Kind: broker.KindLogistics}, Purpose: broker.PurposeDelivery,
			Scopes: []string{"delivery:read"}, Consent: broker.Consent{Notice: true}, State: "out_for_delivery", Fields: orderFields},
		{Party: broker.PolicyParty{ID: "l", Kind: broker.KindLogistics}, Purpose: broker.PurposeDelivery,
			Scopes: []string{"delivery:read"}, Consent: broker.Consent{Notice: true}, State: "packed", Fields: orderFields},
	}
	want := make([]broker.PolicyDecision, len(inputs))
	for i, in := range inputs {
		d, err := e.Evaluate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = d
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 50 {
				i := (g + n) % len(inputs)
				d, err := e.Evaluate(context.Background(), inputs[i])
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allow != want[i].Allow || !maps.Equal(d.Fields, want[i].Fields) {
					t.Errorf("input %d: concurrent decision differs", i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// policyInput is what the Releaser asks the engine for a request.
func policyInput(req broker.Request) broker.PolicyInput {
	scopes := req.Party.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return broker.PolicyInput{
		Party:   broker.PolicyParty{ID: req.Party.ID, Kind: req.Party.Kind},
		Purpose: req.Purpose, Scopes: scopes, Consent: req.Consent, State: req.State, Fields: req.Fields,
	}
}

// TestDataLifeInDecision: every allowed decision carries its purpose's data
// life from policy data, which the release pipeline turns into retain_until.
func TestDataLifeInDecision(t *testing.T) {
	e := engine(t)
	for name, p := range e.Data().Purposes {
		if p.DataLifeDays <= 0 {
			t.Errorf("purpose %s has no data life", name)
		}
	}
	d, err := e.Evaluate(context.Background(), broker.PolicyInput{
		Party: broker.PolicyParty{ID: "r", Kind: broker.KindRetailer}, Purpose: broker.PurposeOrderFulfilment,
		Scopes: []string{"orders:read"}, Consent: broker.Consent{Notice: true}, State: "placed", Fields: []string{"order.id"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := 90 * 24 * time.Hour; d.DataLife != want {
		t.Errorf("order_fulfilment decision data life %v, want %v", d.DataLife, want)
	}
}
