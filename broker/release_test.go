package broker_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// fakePolicy answers every input with one decision (or error) and counts
// evaluations, so the tests see what reached the engine.
type fakePolicy struct {
	dec   broker.PolicyDecision
	err   error
	rev   string
	calls int
	last  broker.PolicyInput
}

func (p *fakePolicy) Evaluate(_ context.Context, in broker.PolicyInput) (broker.PolicyDecision, error) {
	p.calls++
	p.last = in
	return p.dec, p.err
}

func (p *fakePolicy) Revision() string { return p.rev }

// fakeLog keeps appended entries, or fails every append with err.
type fakeLog struct {
	entries []audit.Entry
	err     error
}

func (l *fakeLog) Append(_ context.Context, e audit.Entry) error {
	if l.err != nil {
		return l.err
	}
	l.entries = append(l.entries, e)
	return nil
}

func pseudonymizer(t *testing.T) *broker.Pseudonymizer {
	t.Helper()
	p, err := broker.NewPseudonymizer(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func allow(rules map[string]broker.Transform) broker.PolicyDecision {
	d := broker.PolicyDecision{Allow: true, Fields: map[string]broker.FieldRule{}}
	for f, tr := range rules {
		d.Fields[f] = broker.FieldRule{Allow: true, Transform: tr}
	}
	return d
}

var (
	courier = broker.Party{ID: "courier-1", Kind: broker.KindLogistics, Scopes: []broker.Scope{"orders:read"},
		Legal: broker.PartyLegal{Role: broker.RoleProcessor, Jurisdiction: "IN"}}
	record = broker.Record{"customer.name": "Ravi Kumar", "customer.phone": "+919811112222",
		"delivery.postal_code": "560001", "order.total": broker.INR(57950), "customer.ref": "shp_1"}
)

func request(fields ...string) broker.Request {
	return broker.Request{Party: courier, Purpose: broker.PurposeOrderFulfilment, Subject: "shp_1",
		Resource: "order:ord_1", State: "out_for_delivery", Consent: broker.Consent{Notice: true},
		Fields: fields, Record: record}
}

// TestReleaserDecides: what the policy says, field by field, is what is
// released, transformed or withheld; a denial, an engine error, a missing
// purpose or a closed gate withholds everything (fail closed).
func TestReleaserDecides(t *testing.T) {
	errEngine := errors.New("rego: undefined function")
	cases := []struct {
		name     string
		policy   broker.PolicyDecision
		err      error
		gate     string
		req      broker.Request
		outcome  string
		reason   string
		released broker.Record
		withheld map[string]string // field → reason
		engine   bool              // whether the engine was asked
	}{
		{name: "allowed fields kept", policy: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep}),
			req: request("customer.name"), outcome: audit.OutcomeReleased, engine: true,
			released: broker.Record{"customer.name": "Ravi Kumar"}},
		{name: "mask and generalise", policy: allow(map[string]broker.Transform{"customer.phone": broker.TransformMask,
			"delivery.postal_code": broker.TransformGeneralise, "order.total": broker.TransformGeneralise}),
			req: request("customer.phone", "delivery.postal_code", "order.total"), outcome: audit.OutcomeReleased, engine: true,
			released: broker.Record{"customer.phone": "•••••••••2222", "delivery.postal_code": "560XXX",
				"order.total": broker.INR(57000)}},
		{name: "field the policy does not name is withheld", policy: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep}),
			req: request("customer.name", "customer.phone"), outcome: audit.OutcomePartial, engine: true,
			released: broker.Record{"customer.name": "Ravi Kumar"},
			withheld: map[string]string{"customer.phone": broker.ReasonNotInPolicy}},
		{name: "allowed with drop is withheld", policy: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep,
			"customer.phone": broker.TransformDrop}),
			req: request("customer.name", "customer.phone"), outcome: audit.OutcomePartial, engine: true,
			released: broker.Record{"customer.name": "Ravi Kumar"},
			withheld: map[string]string{"customer.phone": broker.ReasonNotInPolicy}},
		{name: "unknown transform is withheld, never raw", policy: allow(map[string]broker.Transform{"customer.phone": "reverse"}),
			req: request("customer.phone"), outcome: audit.OutcomeDenied, reason: "no field may be released", engine: true,
			withheld: map[string]string{"customer.phone": broker.ReasonTransformFail}},
		{name: "transform that does not fit the value", policy: allow(map[string]broker.Transform{"order.total": broker.TransformMask}),
			req: request("order.total"), outcome: audit.OutcomeDenied, engine: true,
			withheld: map[string]string{"order.total": broker.ReasonTransformFail}},
		{name: "field missing from the record", policy: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep,
			"customer.email": broker.TransformKeep}),
			req: request("customer.name", "customer.email"), outcome: audit.OutcomePartial, engine: true,
			released: broker.Record{"customer.name": "Ravi Kumar"},
			withheld: map[string]string{"customer.email": broker.ReasonNoSuchField}},
		{name: "field denied with the policy's reason", policy: broker.PolicyDecision{Allow: true, Fields: map[string]broker.FieldRule{
			"customer.name": {Allow: true, Transform: broker.TransformKeep}, "customer.phone": {Reason: "not while packed"}}},
			req: request("customer.name", "customer.phone"), outcome: audit.OutcomePartial, engine: true,
			released: broker.Record{"customer.name": "Ravi Kumar"},
			withheld: map[string]string{"customer.phone": "not while packed"}},
		{name: "policy denies", policy: broker.PolicyDecision{Reason: "no consent for marketing"},
			req: request("customer.name", "customer.phone"), outcome: audit.OutcomeDenied, reason: "no consent for marketing", engine: true,
			withheld: map[string]string{"customer.name": "no consent for marketing", "customer.phone": "no consent for marketing"}},
		{name: "policy denies without a reason", policy: broker.PolicyDecision{},
			req: request("customer.name"), outcome: audit.OutcomeDenied, reason: broker.ReasonUnknownParty, engine: true,
			withheld: map[string]string{"customer.name": broker.ReasonUnknownParty}},
		{name: "engine error fails closed", policy: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep}),
			err: errEngine, req: request("customer.name"), outcome: audit.OutcomeDenied, reason: broker.ReasonPolicyError,
			engine: true, withheld: map[string]string{"customer.name": broker.ReasonPolicyError}},
		{name: "no purpose is denied before policy", policy: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep}),
			req:     func() broker.Request { r := request("customer.name"); r.Purpose = ""; return r }(),
			outcome: audit.OutcomeDenied, reason: broker.ReasonNoPurpose,
			withheld: map[string]string{"customer.name": broker.ReasonNoPurpose}},
		{name: "closed gate is denied before policy", policy: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep}),
			gate: "recipient_notice_overdue", req: request("customer.name"), outcome: audit.OutcomeDenied,
			reason: "recipient_notice_overdue", withheld: map[string]string{"customer.name": "recipient_notice_overdue"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := &fakePolicy{dec: tc.policy, err: tc.err, rev: "rev1"}
			log := &fakeLog{}
			r := broker.NewReleaser(pol, pseudonymizer(t), log)
			if tc.gate != "" {
				r.SetGate(func(p broker.Party) string {
					if p.ID == courier.ID {
						return tc.gate
					}
					return ""
				})
			}
			d, err := r.Release(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Release: %v", err)
			}
			if d.Outcome != tc.outcome || (tc.reason != "" && d.Reason != tc.reason) {
				t.Errorf("outcome %s (%q), want %s (%q)", d.Outcome, d.Reason, tc.outcome, tc.reason)
			}
			if len(d.Released) != len(tc.released) {
				t.Errorf("released %v, want %v", d.Released, tc.released)
			}
			for f, v := range tc.released {
				if d.Released[f] != v {
					t.Errorf("%s released as %v, want %v", f, d.Released[f], v)
				}
			}
			got := map[string]string{}
			for _, w := range d.Withheld {
				got[w.Field] = w.Reason
			}
			if len(got) != len(tc.withheld) {
				t.Errorf("withheld %v, want %v", got, tc.withheld)
			}
			for f, why := range tc.withheld {
				if got[f] != why {
					t.Errorf("%s withheld for %q, want %q", f, got[f], why)
				}
			}
			if (pol.calls > 0) != tc.engine {
				t.Errorf("engine asked %d times", pol.calls)
			}
			// Every decision, denials included, is audited once.
			if len(log.entries) != 1 {
				t.Fatalf("%d audit entries", len(log.entries))
			}
			e := log.entries[0]
			if e.DecisionID != d.ID || e.Outcome != d.Outcome || e.Reason != d.Reason || e.PolicyRevision != "rev1" ||
				e.Actor != "logistics:courier-1" || e.Purpose != string(broker.PurposeOrderFulfilment) && tc.req.Purpose != "" {
				t.Errorf("entry %+v does not match decision %+v", e, d)
			}
			released := slices.Clone(e.Released)
			slices.Sort(released)
			want := make([]string, 0, len(tc.released))
			for f := range tc.released {
				want = append(want, f)
			}
			slices.Sort(want)
			if !slices.Equal(released, want) {
				t.Errorf("entry releases %v, want %v", released, want)
			}
			if strings.Contains(e.Subject, "shp_1") || !strings.HasPrefix(e.Subject, "sub_") {
				t.Errorf("entry subject %q is not the audit pseudonym", e.Subject)
			}
		})
	}
}

// TestReleaserAuditFailureReleasesNothing: if the entry cannot be written,
// the caller gets an error and an empty decision, so nothing is sent.
func TestReleaserAuditFailureReleasesNothing(t *testing.T) {
	pol := &fakePolicy{dec: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep}), rev: "rev1"}
	r := broker.NewReleaser(pol, pseudonymizer(t), &fakeLog{err: errors.New("disk full")})
	d, err := r.Release(context.Background(), request("customer.name"))
	if broker.ErrorCode(err) != broker.EUnavailable {
		t.Fatalf("error %v, want %s", err, broker.EUnavailable)
	}
	if d.Released != nil || d.Outcome != "" {
		t.Fatalf("decision %+v returned with the error", d)
	}
	r = broker.NewReleaser(pol, pseudonymizer(t), nil)
	if _, err := r.Release(context.Background(), request("customer.name")); broker.ErrorCode(err) != broker.EInternal {
		t.Fatalf("release without a log: %v", err)
	}
}

// TestReleaserPseudonyms: a pseudonym is pairwise (another partner sees
// another value), stable, and never the subject itself.
func TestReleaserPseudonyms(t *testing.T) {
	pol := &fakePolicy{dec: allow(map[string]broker.Transform{"customer.ref": broker.TransformPseudonym}), rev: "rev1"}
	r := broker.NewReleaser(pol, pseudonymizer(t), &fakeLog{})
	ctx := context.Background()
	ref := func(p broker.Party) string {
		t.Helper()
		req := request("customer.ref")
		req.Party = p
		d, err := r.Release(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := d.Released["customer.ref"].(string)
		return s
	}
	a1, a2 := ref(courier), ref(courier)
	other := courier
	other.ID = "courier-2"
	b := ref(other)
	if !strings.HasPrefix(a1, "cus_") || strings.Contains(a1, "shp_1") {
		t.Fatalf("pseudonym %q", a1)
	}
	if a1 != a2 {
		t.Errorf("not stable: %q, %q", a1, a2)
	}
	if a1 == b {
		t.Errorf("two partners share a pseudonym: %q", a1)
	}
	if a1 != pseudonymizer(t).Partner(courier.ID, "shp_1") {
		t.Errorf("pseudonym %q is not the Pseudonymizer's", a1)
	}
	// A pseudonym of a non-string (or empty) value is withheld, never raw.
	req := request("order.total")
	pol.dec = allow(map[string]broker.Transform{"order.total": broker.TransformPseudonym})
	if d, _ := r.Release(ctx, req); d.Released != nil || d.Withheld[0].Reason != broker.ReasonTransformFail {
		t.Errorf("pseudonym of money: %+v", d)
	}
}

// TestReleaserPlansAndDataLife: a decision is cached per policy input and
// revision (a new revision asks the engine again); a stated data life sets
// RetainUntil on releases, never on denials.
func TestReleaserPlansAndDataLife(t *testing.T) {
	pol := &fakePolicy{dec: allow(map[string]broker.Transform{"customer.name": broker.TransformKeep}), rev: "rev1"}
	pol.dec.DataLife = 30 * 24 * time.Hour
	r := broker.NewReleaser(pol, pseudonymizer(t), &fakeLog{})
	ctx := context.Background()
	d := r.Decide(ctx, request("customer.name"))
	r.Decide(ctx, request("customer.name"))
	if pol.calls != 1 {
		t.Errorf("engine asked %d times for one input", pol.calls)
	}
	if got := d.RetainUntil.Sub(d.Time); got != 30*24*time.Hour {
		t.Errorf("retain for %s", got)
	}
	if pol.last.Party.ID != courier.ID || pol.last.Party.Role != broker.RoleProcessor || pol.last.Today == "" ||
		!slices.Equal(pol.last.Fields, []string{"customer.name"}) {
		t.Errorf("policy input %+v", pol.last)
	}
	req := request("customer.name")
	req.State = "delivered"
	r.Decide(ctx, req)
	pol.rev = "rev2"
	r.Decide(ctx, request("customer.name"))
	if pol.calls != 3 {
		t.Errorf("engine asked %d times, want 3 (new state, new revision)", pol.calls)
	}
	pol.rev = "rev3"
	pol.dec = broker.PolicyDecision{Reason: "closed", DataLife: time.Hour}
	if d := r.Decide(ctx, request("customer.name")); !d.RetainUntil.IsZero() {
		t.Errorf("a denial has a data life: %v", d.RetainUntil)
	}
}
