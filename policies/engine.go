package policies

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/sieve-broker/sieve/broker"
)

// Query is the rule the engine evaluates for every decision.
const Query = "data.sieve.release.decision"

// decisionPackage and decisionRule name Query's parts, to check that a
// policy tree defines it (an absent rule would only be undefined at run time).
var decisionPackage = ast.MustParseRef("data.sieve.release")

const decisionRule = "decision"

// Errors Evaluate returns (wrapped) when the policy does not give a usable
// answer. The Releaser denies on any error; these let callers and tests tell
// a broken policy from a cancelled context.
var (
	// ErrUndefined means the decision rule produced no value for the input.
	ErrUndefined = errors.New("policies: decision is undefined")
	// ErrMalformed means the decision does not have the documented shape.
	ErrMalformed = errors.New("policies: decision is malformed")
)

// Engine evaluates the release policy. It is immutable after New and safe
// for concurrent use: OPA's prepared query is read-only once prepared.
type Engine struct {
	query    rego.PreparedEvalQuery
	revision string
	data     Data
	notices  map[string]NoticeText
}

var _ broker.PolicyEngine = (*Engine)(nil)

// Default compiles the policy tree embedded in the binary. Compiling costs a
// few milliseconds: call it once at start-up and share the engine.
func Default(ctx context.Context) (*Engine, error) { return New(ctx, FS()) }

// Load compiles the policy tree in dir (BROKER_POLICY_DIR). The directory
// replaces the embedded tree entirely, nothing is merged: it must hold the
// same layout (sieve/data.json, sieve/release/release.rego, …). An empty dir
// means the embedded tree.
func Load(ctx context.Context, dir string) (*Engine, error) {
	if dir == "" {
		return Default(ctx)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("policies: policy directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("policies: policy directory %s is not a directory", dir)
	}
	e, err := New(ctx, os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	return e, nil
}

// New compiles the policy tree in fsys: every *.rego file except tests, and
// every data.json, placed in the data document at its directory's path. It
// checks that the tree defines the decision rule, that its data is complete
// and consistent (Data.Validate), that it compiles in strict mode with
// deterministic built-ins only, and that it answers a probe decision with
// the right shape. Any failure is an error naming the problem.
func New(ctx context.Context, fsys fs.FS) (*Engine, error) {
	src, err := readTree(fsys, false)
	if err != nil {
		return nil, err
	}
	if !definesDecision(src.modules) {
		return nil, fmt.Errorf("policies: no rule %s.%s in the policy tree", strings.TrimPrefix(decisionPackage.String(), "data."), decisionRule)
	}
	sieve, ok := src.data["sieve"]
	if !ok {
		return nil, errors.New("policies: no policy data: data.sieve is missing (sieve/data.json)")
	}
	data, err := decodeData(sieve)
	if err != nil {
		return nil, fmt.Errorf("policies: policy data (data.sieve): %w", err)
	}
	if err := data.Validate(); err != nil {
		return nil, fmt.Errorf("policies: policy data (data.sieve) is invalid:\n%w", err)
	}
	notices, err := readNoticesChecked(fsys, data)
	if err != nil {
		return nil, err
	}

	opts := []func(*rego.Rego){
		rego.Query(Query),
		// AST values on read: data lookups then cost no conversion per eval.
		rego.Store(inmem.NewFromObjectWithOpts(src.data, inmem.OptReturnASTValuesOnRead(true))),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Capabilities(capabilities()),
		rego.Strict(true),
		rego.StrictBuiltinErrors(true),
		// Hand results back as AST terms: decode reads them directly instead
		// of having OPA convert them to maps first.
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	}
	for _, name := range slices.Sorted(maps.Keys(src.modules)) {
		opts = append(opts, rego.ParsedModule(src.modules[name]))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: compiling the policy: %w", err)
	}
	e := &Engine{query: pq, revision: src.revision, data: data, notices: notices}
	if _, err := e.Evaluate(ctx, probe(data)); err != nil {
		return nil, fmt.Errorf("policies: probe decision failed: %w", err)
	}
	return e, nil
}

// probe is an input every sound policy answers: a retailer asking for the
// whole catalogue for order fulfilment.
func probe(d Data) broker.PolicyInput {
	return broker.PolicyInput{
		Party:   broker.PolicyParty{ID: "probe", Kind: broker.KindRetailer},
		Purpose: broker.PurposeOrderFulfilment,
		Scopes:  broker.AllScopes,
		Consent: broker.Consent{Notice: true},
		State:   "placed",
		Fields:  slices.Sorted(maps.Keys(d.Fields)),
	}
}

// capabilities are OPA's built-ins minus the non-deterministic ones
// (http.send, time.now_ns, rand.intn, uuid.rfc4122, net.lookup_ip_addr…).
// The Releaser caches a decision per input and revision, which is only
// sound if a decision is a pure function of them; this makes it so.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), (*ast.Builtin).IsNondeterministic)
	c.AllowNet = []string{} // no remote schemas either
	return c
}

// Revision is a hash (hex SHA-256) of the policy tree's file names and
// contents, tests excluded: it changes exactly when a decision may change.
func (e *Engine) Revision() string { return e.revision }

// Data returns a copy of the policy data.
func (e *Engine) Data() Data { return e.data.Clone() }

// RetentionFor returns the retention period of a data category. An unknown
// category gets 0, "keep nothing": data the policy does not account for has
// no period that would justify keeping it.
func (e *Engine) RetentionFor(category string) time.Duration {
	return e.data.Retention[category].Period()
}

// Evaluate decides on in. It fails closed: an evaluation error, an undefined
// decision or a decision of the wrong shape is an error (wrapping
// ErrUndefined or ErrMalformed for the latter two).
func (e *Engine) Evaluate(ctx context.Context, in broker.PolicyInput) (broker.PolicyDecision, error) {
	// OPA notices cancellation from a goroutine, so a short evaluation may
	// finish under a context that was already done; check it first.
	if err := ctx.Err(); err != nil {
		return broker.PolicyDecision{}, fmt.Errorf("policies: %w", err)
	}
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(inputValue(in)))
	if err != nil {
		return broker.PolicyDecision{}, fmt.Errorf("policies: evaluating %s: %w", Query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return broker.PolicyDecision{}, ErrUndefined
	}
	if len(rs) > 1 {
		return broker.PolicyDecision{}, fmt.Errorf("%w: %d results", ErrMalformed, len(rs))
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return broker.PolicyDecision{}, fmt.Errorf("%w: result is %T", ErrMalformed, rs[0].Expressions[0].Value)
	}
	d, err := decodeDecision(t.Value)
	if err != nil {
		return d, err
	}
	// The data life comes from the data the rules decided on, not from
	// the rules, so that every allowed purpose carries one.
	d.DataLife = e.data.Purposes[in.Purpose].DataLife()
	return d, nil
}

// keyRestricted is the input's restriction flag (GDPR Art. 18).
var keyRestricted = ast.StringTerm("restricted")

// Keys of the input and decision documents, built once.
var (
	keyParty     = ast.StringTerm("party")
	keyID        = ast.StringTerm("id")
	keyKind      = ast.StringTerm("kind")
	keyPurpose   = ast.StringTerm("purpose")
	keyScopes    = ast.StringTerm("scopes")
	keyConsent   = ast.StringTerm("consent")
	keyNotice    = ast.StringTerm("notice")
	keyMarketing = ast.StringTerm("marketing")
	keyAnalytics = ast.StringTerm("analytics")
	keyChild     = ast.StringTerm("child")
	keyState     = ast.StringTerm("state")
	keyFields    = ast.StringTerm("fields")
	keyAllow     = ast.StringTerm("allow")
	keyReason    = ast.StringTerm("reason")
	keyTransform = ast.StringTerm("transform")
	keyRole      = ast.StringTerm("role")
	keyAgreement = ast.StringTerm("agreement")
	keyExpires   = ast.StringTerm("agreement_expires")
	keyJuris     = ast.StringTerm("jurisdiction")
	keyBasis     = ast.StringTerm("transfer_basis")
	keySubject   = ast.StringTerm("subject")
	keyToday     = ast.StringTerm("today")
)

// inputValue builds the input document as an AST value directly, the same
// document json.Marshal(in) would give, without OPA's reflective
// conversion of a Go value on every evaluation.
func inputValue(in broker.PolicyInput) ast.Value {
	return ast.NewObject(
		ast.Item(keyParty, ast.ObjectTerm(
			ast.Item(keyID, ast.StringTerm(in.Party.ID)),
			ast.Item(keyKind, ast.StringTerm(string(in.Party.Kind))),
			ast.Item(keyRole, ast.StringTerm(in.Party.Role)),
			ast.Item(keyAgreement, ast.StringTerm(in.Party.Agreement)),
			ast.Item(keyExpires, ast.StringTerm(in.Party.AgreementExpires)),
			ast.Item(keyJuris, ast.StringTerm(in.Party.Jurisdiction)),
			ast.Item(keyBasis, ast.StringTerm(in.Party.TransferBasis)),
		)),
		ast.Item(keyPurpose, ast.StringTerm(string(in.Purpose))),
		ast.Item(keyScopes, stringsTerm(in.Scopes)),
		ast.Item(keyConsent, ast.ObjectTerm(
			ast.Item(keyNotice, ast.BooleanTerm(in.Consent.Notice)),
			ast.Item(keyMarketing, ast.BooleanTerm(in.Consent.Marketing)),
			ast.Item(keyAnalytics, ast.BooleanTerm(in.Consent.Analytics)),
			ast.Item(keyChild, ast.BooleanTerm(in.Consent.Child)),
		)),
		ast.Item(keyRestricted, ast.BooleanTerm(in.Restricted)),
		ast.Item(keyState, ast.StringTerm(in.State)),
		ast.Item(keyFields, stringsTerm(in.Fields)),
		ast.Item(keySubject, ast.ObjectTerm(ast.Item(keyJuris, ast.StringTerm(in.Subject.Jurisdiction)))),
		ast.Item(keyToday, ast.StringTerm(in.Today)),
	)
}

func stringsTerm(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

// decodeDecision reads {"allow", "reason", "fields": {f: {"allow",
// "transform", "reason"}}}. Anything else is ErrMalformed: a policy that
// answers in another shape is broken, and guessing would fail open.
func decodeDecision(v ast.Value) (broker.PolicyDecision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return broker.PolicyDecision{}, fmt.Errorf("%w: %s, not an object", ErrMalformed, ast.ValueName(v))
	}
	var d broker.PolicyDecision
	var err error
	if d.Allow, err = boolAt(obj, keyAllow, "decision"); err != nil {
		return broker.PolicyDecision{}, err
	}
	if d.Reason, err = stringAt(obj, keyReason, "decision"); err != nil {
		return broker.PolicyDecision{}, err
	}
	ft := obj.Get(keyFields)
	if ft == nil {
		return broker.PolicyDecision{}, fmt.Errorf("%w: decision has no fields", ErrMalformed)
	}
	fields, ok := ft.Value.(ast.Object)
	if !ok {
		return broker.PolicyDecision{}, fmt.Errorf("%w: decision.fields is %s, not an object", ErrMalformed, ast.ValueName(ft.Value))
	}
	d.Fields = make(map[string]broker.FieldRule, fields.Len())
	err = fields.Iter(func(k, v *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("%w: decision.fields has a %s key", ErrMalformed, ast.ValueName(k.Value))
		}
		at := "decision.fields[" + strconv.Quote(string(name)) + "]"
		rule, ok := v.Value.(ast.Object)
		if !ok {
			return fmt.Errorf("%w: %s is %s, not an object", ErrMalformed, at, ast.ValueName(v.Value))
		}
		var r broker.FieldRule
		var err error
		if r.Allow, err = boolAt(rule, keyAllow, at); err != nil {
			return err
		}
		if r.Reason, err = stringAt(rule, keyReason, at); err != nil {
			return err
		}
		t, err := stringAt(rule, keyTransform, at)
		if err != nil {
			return err
		}
		r.Transform = broker.Transform(t)
		if !slices.Contains(allTransforms, r.Transform) {
			return fmt.Errorf("%w: %s has unknown transform %q", ErrMalformed, at, t)
		}
		d.Fields[string(name)] = r
		return nil
	})
	if err != nil {
		return broker.PolicyDecision{}, err
	}
	return d, nil
}

func boolAt(obj ast.Object, key *ast.Term, at string) (bool, error) {
	t := obj.Get(key)
	if t == nil {
		return false, fmt.Errorf("%w: %s has no %s", ErrMalformed, at, keyName(key))
	}
	b, ok := t.Value.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%w: %s.%s is %s, not a boolean", ErrMalformed, at, keyName(key), ast.ValueName(t.Value))
	}
	return bool(b), nil
}

func stringAt(obj ast.Object, key *ast.Term, at string) (string, error) {
	t := obj.Get(key)
	if t == nil {
		return "", fmt.Errorf("%w: %s has no %s", ErrMalformed, at, keyName(key))
	}
	s, ok := t.Value.(ast.String)
	if !ok {
		return "", fmt.Errorf("%w: %s.%s is %s, not a string", ErrMalformed, at, keyName(key), ast.ValueName(t.Value))
	}
	return string(s), nil
}

func keyName(key *ast.Term) string {
	s, _ := key.Value.(ast.String)
	return string(s)
}

// source is a policy tree as read from a file system.
type source struct {
	modules  map[string]*ast.Module // policy modules by path
	tests    map[string]*ast.Module // *_test.rego modules, when asked for
	data     map[string]any         // the data document, from every data.json
	revision string
}

// readTree reads every *.rego and data.json of fsys, skipping testdata and
// hidden directories. Tests are parsed only when withTests is set; they
// never count towards the revision.
func readTree(fsys fs.FS, withTests bool) (*source, error) {
	src := &source{modules: map[string]*ast.Module{}, tests: map[string]*ast.Module{}, data: map[string]any{}}
	type file struct {
		name string
		body []byte
	}
	var hashed []file
	err := fs.WalkDir(fsys, ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := de.Name()
		if de.IsDir() {
			if p != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return fs.SkipDir
			}
			return nil
		}
		isTest := strings.HasSuffix(name, "_test.rego")
		switch {
		case isTest && !withTests:
			return nil
		case strings.HasSuffix(name, ".rego"), name == "data.json":
		default:
			return nil
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if name == "data.json" {
			if err := src.addData(p, body); err != nil {
				return err
			}
			hashed = append(hashed, file{p, body})
			return nil
		}
		m, err := ast.ParseModuleWithOpts(p, string(body), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			return err
		}
		if isTest {
			src.tests[p] = m
			return nil
		}
		src.modules[p] = m
		hashed = append(hashed, file{p, body})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policies: reading the policy tree: %w", err)
	}
	if len(src.modules) == 0 {
		return nil, errors.New("policies: the policy tree has no .rego modules")
	}
	slices.SortFunc(hashed, func(a, b file) int { return strings.Compare(a.name, b.name) })
	h := sha256.New()
	for _, f := range hashed {
		// Length-prefixed, so that no two trees hash the same by moving
		// bytes between a name and a body.
		fmt.Fprintf(h, "%d:%s\x00%d:", len(f.name), f.name, len(f.body))
		h.Write(f.body)
	}
	src.revision = hex.EncodeToString(h.Sum(nil))
	return src, nil
}

// addData places the object in a data.json at its directory's path in the
// data document, as OPA bundles do (sieve/data.json → data.sieve).
func (src *source) addData(p string, body []byte) error {
	var doc any
	if err := util.UnmarshalJSON(body, &doc); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: top level is not a JSON object", p)
	}
	node := src.data
	at := "data"
	if dir := path.Dir(p); dir != "." {
		for _, seg := range strings.Split(dir, "/") {
			at += "." + seg
			next, exists := node[seg]
			if !exists {
				m := map[string]any{}
				node[seg], next = m, m
			}
			m, ok := next.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: %s is already a %T", p, at, next)
			}
			node = m
		}
	}
	return mergeData(node, obj, at, p)
}

func mergeData(dst, src map[string]any, at, file string) error {
	for k, v := range src {
		old, exists := dst[k]
		if !exists {
			dst[k] = v
			continue
		}
		om, ok1 := old.(map[string]any)
		nm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("%s: %s.%s is defined twice", file, at, k)
		}
		if err := mergeData(om, nm, at+"."+k, file); err != nil {
			return err
		}
	}
	return nil
}

// definesDecision reports whether a module of package sieve.release has a
// rule named decision.
func definesDecision(modules map[string]*ast.Module) bool {
	for _, m := range modules {
		if !m.Package.Path.Equal(decisionPackage) {
			continue
		}
		for _, r := range m.Rules {
			if ref := r.Head.Ref(); len(ref) == 1 && ref[0].Value.Compare(ast.Var(decisionRule)) == 0 {
				return true
			}
		}
	}
	return false
}
