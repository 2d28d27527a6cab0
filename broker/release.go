package broker

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/audit"
)

// Record is a flat view of one resource: dotted field names ("customer.phone",
// "delivery.postal_code") to values. Values are strings, integers, Money,
// time.Time, or slices and structs the caller renders.
type Record map[string]any

// Transform is what policy says to do with a field on its way out.
type Transform string

// The transforms. Drop is a withholding; the others release a value.
const (
	TransformKeep       Transform = "keep"       // release as is
	TransformMask       Transform = "mask"       // keep the last 4 characters only
	TransformGeneralise Transform = "generalise" // coarser value: postal district, date, bucket
	TransformPseudonym  Transform = "pseudonym"  // pairwise pseudonym per partner
	TransformDrop       Transform = "drop"       // withheld
)

// Request asks for a release of fields of one record to one party for one
// purpose. The policy sees everything here except the record's values.
type Request struct {
	Party    Party
	Purpose  Purpose
	Action   string   // audit action; "release" when empty
	Subject  string   // internal subject (shopper) id; "" when no shopper is concerned
	Resource string   // e.g. "order:ord_…"; no personal data
	State    string   // the record's state, e.g. an order's status
	Consent  Consent  // the subject's consent state
	Fields   []string // the fields asked for
	Record   Record   // the values

	// Restricted: the subject paused processing (GDPR Art. 18, SPEC
	// §5.11); the policy then denies every purpose but legal_obligation.
	Restricted bool
	// Jurisdiction is the shopper's jurisdiction (ISO 3166-1 alpha-2, from
	// the phone's country code, else the store's); "" when no shopper is
	// concerned. A release to a recipient elsewhere needs a transfer basis.
	Jurisdiction string
	// Today is the date (YYYY-MM-DD, UTC) agreements are checked against;
	// the Releaser fills it when empty. It is an input, not a clock read in
	// policy, so a decision stays a pure function of its input.
	Today string
}

// Withheld is a field the release did not include, with the reason.
type Withheld struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Decision is the outcome of a release.
type Decision struct {
	ID             string
	Time           time.Time
	Outcome        string // audit.OutcomeReleased, OutcomePartial or OutcomeDenied
	Reason         string // why, when denied
	Purpose        Purpose
	Released       Record
	Withheld       []Withheld
	PolicyRevision string
	// RetainUntil is the release's data life (SPEC §5.12): when the
	// recipient must have deleted what it received; zero when nothing
	// was released.
	RetainUntil time.Time
}

// WithheldFields returns the names of the withheld fields.
func (d Decision) WithheldFields() []string {
	out := make([]string, len(d.Withheld))
	for i, w := range d.Withheld {
		out[i] = w.Field
	}
	return out
}

// PolicyInput is what the policy engine decides on. It never holds values of
// the record, so a decision is a pure function of it and can be reused.
type PolicyInput struct {
	Party   PolicyParty `json:"party"`
	Purpose Purpose     `json:"purpose"`
	Scopes  []Scope     `json:"scopes"`
	Consent Consent     `json:"consent"`
	State   string      `json:"state"`
	Fields  []string    `json:"fields"`

	// Restricted: the subject paused processing (GDPR Art. 18).
	Restricted bool `json:"restricted"`
	// Subject is what the policy knows of the shopper beyond consent.
	Subject PolicySubject `json:"subject"`
	// Today is the date agreements are checked against (YYYY-MM-DD).
	Today string `json:"today"`
}

// PolicyParty is the party as the policy sees it.
type PolicyParty struct {
	ID   string    `json:"id"`
	Kind PartyKind `json:"kind"`
	// The partner's legal registry entry (SPEC §2, §5.10); empty for the
	// shopper's chat, officers and the system, which are not recipients
	// outside the broker.
	Role             string `json:"role"`
	Agreement        string `json:"agreement"`
	AgreementExpires string `json:"agreement_expires"`
	Jurisdiction     string `json:"jurisdiction"`
	TransferBasis    string `json:"transfer_basis"`
}

// PolicySubject is the shopper as the policy sees it: where they are.
type PolicySubject struct {
	Jurisdiction string `json:"jurisdiction"`
}

// FieldRule is the policy's verdict on one field.
type FieldRule struct {
	Allow     bool
	Transform Transform // when allowed
	Reason    string    // when withheld
}

// PolicyDecision is the policy engine's answer for one input.
type PolicyDecision struct {
	Allow  bool                 // the purpose is open to this party in this state at all
	Reason string               // why not, when !Allow
	Fields map[string]FieldRule // verdicts for asked fields; a missing field is withheld
	// DataLife is how long the recipient may keep what it receives for
	// this purpose (policy data); zero: no data life is stated.
	DataLife time.Duration
}

// PolicyEngine evaluates policy. Implementations must fail closed: an error
// is treated as a denial by the Releaser.
type PolicyEngine interface {
	Evaluate(ctx context.Context, in PolicyInput) (PolicyDecision, error)
	// Revision identifies the policy in force (a hash of its files).
	Revision() string
}

// AuditAppender durably appends audit entries. Append returns only once the
// entry is durable: committed on its own, or part of the transaction carried
// by ctx (see Transactor), so that it commits or fails with the release.
type AuditAppender interface {
	Append(ctx context.Context, e audit.Entry) error
}

// Transactor runs fn in one database transaction carried by the context it
// passes; adapters' methods called with that context join the transaction.
type Transactor interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Reasons given for withheld fields and denials.
const (
	ReasonNoPurpose     = "purpose is required"
	ReasonPolicyError   = "policy evaluation failed"
	ReasonNotInPolicy   = "field not allowed for this purpose"
	ReasonNoSuchField   = "no such field"
	ReasonUnknownParty  = "party kind may not use this purpose"
	ReasonTransformFail = "transform not applicable"
)

// Releaser is the release pipeline: policy decision, minimisation, audit.
type Releaser struct {
	policy PolicyEngine
	pseudo *Pseudonymizer
	audit  AuditAppender
	now    func() time.Time

	mu    sync.RWMutex
	plans map[string]*plan

	gate atomic.Pointer[Gate]
	rec  *Recorder
}

// Gate is a check every release passes before policy: a non-empty answer
// is the reason code the whole release is denied with (e.g. a partner
// holding an overdue recipient notice). It must be cheap: it runs on every
// release, partner reads included.
type Gate func(p Party) string

// SetGate installs the gate every later release passes (nil removes it).
func (r *Releaser) SetGate(g Gate) {
	if g == nil {
		r.gate.Store(nil)
		return
	}
	r.gate.Store(&g)
}

// maxPlans bounds the decision cache; it is cleared when full.
const maxPlans = 8192

// NewReleaser returns a pipeline over the given engine, pseudonymizer and
// audit log. audit may be nil only for Decide-only use (benchmarks, previews).
func NewReleaser(policy PolicyEngine, pseudo *Pseudonymizer, log AuditAppender) *Releaser {
	return &Releaser{policy: policy, pseudo: pseudo, audit: log, now: time.Now, plans: make(map[string]*plan),
		rec: NewRecorder(log, policy, pseudo)}
}

// Policy returns the engine in use.
func (r *Releaser) Policy() PolicyEngine { return r.policy }

// Pseudonyms returns the pseudonymizer in use.
func (r *Releaser) Pseudonyms() *Pseudonymizer { return r.pseudo }

// plan is a policy decision compiled for one input: a rule per asked field.
type plan struct {
	allow  bool
	reason string
	rules  []FieldRule // parallel to the input's fields
	life   time.Duration
}

// Release decides and records: it evaluates policy, minimises the record,
// and appends the audit entry. If the audit append fails the release fails
// (the error is returned and nothing may be sent). A denial is not an error:
// it is a Decision with Outcome denied, audited like a release.
func (r *Releaser) Release(ctx context.Context, req Request) (Decision, error) {
	d := r.Decide(ctx, req)
	if r.audit == nil {
		return Decision{}, Errorf(EInternal, "release without an audit log")
	}
	if err := r.audit.Append(ctx, r.Entry(req, d)); err != nil {
		return Decision{}, Wrap(EUnavailable, err, "audit log unavailable; nothing was released")
	}
	return d, nil
}

// Entry builds the audit entry of a decision (the Recorder builds it).
func (r *Releaser) Entry(req Request, d Decision) audit.Entry { return r.rec.release(req, d) }

// Decide evaluates policy and minimises the record, without auditing. It
// never fails open: a missing purpose or a policy error is a denial.
func (r *Releaser) Decide(ctx context.Context, req Request) Decision {
	d := Decision{ID: NewID("dec"), Time: r.now().UTC().Truncate(time.Microsecond), Purpose: req.Purpose,
		PolicyRevision: r.policy.Revision()}
	if req.Purpose == "" {
		return denyAll(d, req.Fields, ReasonNoPurpose)
	}
	if g := r.gate.Load(); g != nil {
		if reason := (*g)(req.Party); reason != "" {
			return denyAll(d, req.Fields, reason)
		}
	}
	if req.Today == "" {
		req.Today = d.Time.Format(time.DateOnly)
	}
	p, err := r.plan(ctx, req)
	if err != nil {
		return denyAll(d, req.Fields, ReasonPolicyError)
	}
	if !p.allow {
		reason := p.reason
		if reason == "" {
			reason = ReasonUnknownParty
		}
		return denyAll(d, req.Fields, reason)
	}
	d.Released = make(Record, len(req.Fields))
	for i, f := range req.Fields {
		rule := p.rules[i]
		if !rule.Allow {
			d.Withheld = append(d.Withheld, Withheld{Field: f, Reason: rule.Reason})
			continue
		}
		v, ok := req.Record[f]
		if !ok {
			d.Withheld = append(d.Withheld, Withheld{Field: f, Reason: ReasonNoSuchField})
			continue
		}
		out, ok := r.transform(rule.Transform, req.Party.ID, v)
		if !ok {
			d.Withheld = append(d.Withheld, Withheld{Field: f, Reason: ReasonTransformFail})
			continue
		}
		d.Released[f] = out
	}
	switch {
	case len(d.Released) == 0:
		d.Outcome = audit.OutcomeDenied
		d.Reason = "no field may be released"
		d.Released = nil
	case len(d.Withheld) > 0:
		d.Outcome = audit.OutcomePartial
	default:
		d.Outcome = audit.OutcomeReleased
	}
	if d.Outcome != audit.OutcomeDenied && p.life > 0 {
		d.RetainUntil = d.Time.Add(p.life)
	}
	return d
}

func denyAll(d Decision, fields []string, reason string) Decision {
	d.Outcome = audit.OutcomeDenied
	d.Reason = reason
	for _, f := range fields {
		d.Withheld = append(d.Withheld, Withheld{Field: f, Reason: reason})
	}
	return d
}

// plan returns the cached plan for req's policy input, evaluating policy on
// a miss. The key covers every input the policy sees plus its revision, so a
// hit is exactly the decision the engine would make.
func (r *Releaser) plan(ctx context.Context, req Request) (*plan, error) {
	rev := r.policy.Revision()
	key := planKey(req, rev)
	r.mu.RLock()
	p, ok := r.plans[key]
	r.mu.RUnlock()
	if ok {
		return p, nil
	}
	in := PolicyInput{
		Restricted: req.Restricted,

		Party: PolicyParty{ID: req.Party.ID, Kind: req.Party.Kind, Role: req.Party.Legal.Role,
			Agreement: req.Party.Legal.Agreement, AgreementExpires: req.Party.Legal.AgreementExpires,
			Jurisdiction: req.Party.Legal.Jurisdiction, TransferBasis: req.Party.Legal.TransferBasis},
		Purpose: req.Purpose,
		Scopes:  nonNil(req.Party.Scopes),
		Consent: req.Consent,
		State:   req.State,
		Fields:  nonNil(req.Fields),
		Subject: PolicySubject{Jurisdiction: req.Jurisdiction},
		Today:   req.Today,
	}
	pd, err := r.policy.Evaluate(ctx, in)
	if err != nil {
		return nil, err
	}
	p = &plan{allow: pd.Allow, reason: pd.Reason, rules: make([]FieldRule, len(req.Fields)), life: pd.DataLife}
	for i, f := range req.Fields {
		rule, ok := pd.Fields[f]
		switch {
		case !ok:
			rule = FieldRule{Reason: ReasonNotInPolicy}
		case rule.Allow && rule.Transform == TransformDrop:
			rule = FieldRule{Reason: ReasonNotInPolicy}
		case rule.Allow && !validTransform(rule.Transform):
			rule = FieldRule{Reason: ReasonTransformFail}
		case !rule.Allow && rule.Reason == "":
			rule.Reason = ReasonNotInPolicy
		}
		p.rules[i] = rule
	}
	r.mu.Lock()
	if len(r.plans) >= maxPlans {
		clear(r.plans)
	}
	r.plans[key] = p
	r.mu.Unlock()
	return p, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func validTransform(t Transform) bool {
	switch t {
	case TransformKeep, TransformMask, TransformGeneralise, TransformPseudonym:
		return true
	}
	return false
}

func planKey(req Request, rev string) string {
	var b strings.Builder
	n := len(rev) + len(req.Party.ID) + len(req.Party.Kind) + len(req.Purpose) + len(req.State) + 8
	for _, s := range req.Party.Scopes {
		n += len(s) + 1
	}
	for _, f := range req.Fields {
		n += len(f) + 1
	}
	b.Grow(n)
	b.WriteString(rev)
	b.WriteByte(0)
	b.WriteString(req.Party.ID)
	b.WriteByte(0)
	b.WriteString(string(req.Party.Kind))
	b.WriteByte(0)
	b.WriteString(string(req.Purpose))
	b.WriteByte(0)
	b.WriteString(req.State)
	b.WriteByte(0)
	b.WriteByte(req.Consent.key())
	if req.Restricted {
		b.WriteByte('R')
	}
	for _, s := range [...]string{req.Party.Legal.Role, req.Party.Legal.Agreement, req.Party.Legal.AgreementExpires,
		req.Party.Legal.Jurisdiction, req.Party.Legal.TransferBasis, req.Jurisdiction, req.Today} {
		b.WriteByte(3)
		b.WriteString(s)
	}
	for _, s := range req.Party.Scopes {
		b.WriteByte(1)
		b.WriteString(s)
	}
	b.WriteByte(0)
	for _, f := range req.Fields {
		b.WriteByte(2)
		b.WriteString(f)
	}
	return b.String()
}

// transform applies t to v for the given partner; ok is false when t does
// not apply to v's type (the field is then withheld, never released raw).
func (r *Releaser) transform(t Transform, partnerID string, v any) (any, bool) {
	switch t {
	case TransformKeep:
		return v, true
	case TransformMask:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		return Mask(s), true
	case TransformGeneralise:
		return Generalise(v)
	case TransformPseudonym:
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, false
		}
		return r.pseudo.Partner(partnerID, s), true
	}
	return nil, false
}

// Mask keeps the last four characters of s and replaces the rest with '•'.
// Strings of four characters or fewer are masked whole.
func Mask(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= 4 {
		return strings.Repeat("•", n)
	}
	rs := []rune(s)
	return strings.Repeat("•", n-4) + string(rs[n-4:])
}

// Generalise coarsens a value: a postal code (or any string) keeps its first
// three characters (the Indian postal district), a time keeps its date, an
// integer is rounded down to two significant digits.
func Generalise(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		rs := []rune(x)
		if len(rs) <= 3 {
			return strings.Repeat("X", len(rs)), true
		}
		return string(rs[:3]) + strings.Repeat("X", len(rs)-3), true
	case time.Time:
		return x.UTC().Format(time.DateOnly), true
	case int64:
		return roundDown2(x), true
	case int:
		return int(roundDown2(int64(x))), true
	case Money:
		return Money{Value: roundDown2(x.Value), Offset: x.Offset, Currency: x.Currency}, true
	}
	return nil, false
}

func roundDown2(x int64) int64 {
	if x < 0 {
		return -roundDown2(-x)
	}
	var scale int64 = 1
	for x/scale >= 100 {
		scale *= 10
	}
	return x / scale * scale
}

// Money is an amount in integer minor units: Value / Offset in Currency.
type Money struct {
	Value    int64  `json:"value"`
	Offset   int    `json:"offset"`
	Currency string `json:"currency,omitempty"`
}

// OffsetINR is the offset of every INR amount Sieve handles: values are
// paise, so {Value: 28950, Offset: 100} is ₹289.50. It is the one spelling
// of that offset; the catalog, the Cloud API adapter and the simulator use it.
const OffsetINR = 100

// INR returns an amount of paise in rupees' minor units.
func INR(paise int64) Money { return Money{Value: paise, Offset: OffsetINR, Currency: "INR"} }

// String renders m for people, e.g. "₹289.50".
func (m Money) String() string {
	sym := m.Currency + " "
	if m.Currency == "INR" || m.Currency == "" {
		sym = "₹"
	}
	if m.Offset != 100 {
		return fmt.Sprintf("%s%d/%d", sym, m.Value, m.Offset)
	}
	sign := ""
	v := m.Value
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%s%d.%02d", sign, sym, v/100, v%100)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier with the given prefix, e.g. "ord_…":
// 128 bits, lower-case base32, safe in URLs and in WhatsApp reference ids.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// SortedFields returns the record's field names in order.
func (rec Record) SortedFields() []string {
	out := make([]string, 0, len(rec))
	for f := range rec {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// Recorder returns the recorder of the broker's other audit entries, over
// the same log, policy and pseudonyms as the releases.
func (r *Releaser) Recorder() *Recorder { return r.rec }

// Audit returns the audit log the pipeline writes to.
func (r *Releaser) Audit() AuditAppender { return r.audit }

// ReleaseGroup is what the audit log says of one (subject, recipient,
// released fields) combination in a window: how many releases.
type ReleaseGroup struct {
	Subject  string // the audit pseudonym
	Actor    string // kind:id of the recipient
	Released string // the released field names, as JSON
	Count    int
}
