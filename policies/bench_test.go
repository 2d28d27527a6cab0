package policies

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// benchRequest is the SPEC §8 release: a 15-field order to a retailer for
// order fulfilment.
func benchRequest() broker.Request {
	return broker.Request{
		Party: retailer1, Purpose: broker.PurposeOrderFulfilment, State: "placed", Consent: notice,
		Subject: subject, Resource: "order:ord_mfrggzdfmztwq2lknnwg23tbnr", Fields: orderFields, Record: order(),
	}
}

// BenchmarkRelease is the broker's release decision: policy (a warm plan
// cache: the engine is asked once per distinct input and revision) plus
// minimisation, pseudonymisation and the decision id. Compare it with
// BenchmarkOPAEval, the same policy evaluated plainly on every call.
func BenchmarkRelease(b *testing.B) {
	r, _ := releaser(b)
	req := benchRequest()
	ctx := context.Background()
	if d := r.Decide(ctx, req); d.Outcome != audit.OutcomePartial || len(d.Released) != 10 {
		b.Fatalf("warm-up decision %s %q, %d released; want partial with 10", d.Outcome, d.Reason, len(d.Released))
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := r.Decide(ctx, req); len(d.Released) != 10 {
			b.Fatalf("released %d fields", len(d.Released))
		}
	}
}

// plainQuery prepares the embedded policy the stock way: Go input converted
// by OPA, results converted to Go maps, data read through the default store.
func plainQuery(b *testing.B) rego.PreparedEvalQuery {
	b.Helper()
	src, err := readTree(FS(), false)
	if err != nil {
		b.Fatal(err)
	}
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(inmem.NewFromObject(src.data)),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	}
	for _, name := range slices.Sorted(maps.Keys(src.modules)) {
		opts = append(opts, rego.ParsedModule(src.modules[name]))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return pq
}

func plainEval(b *testing.B, pq rego.PreparedEvalQuery, in broker.PolicyInput) {
	rs, err := pq.Eval(context.Background(), rego.EvalInput(in))
	if err != nil {
		b.Fatal(err)
	}
	if len(rs) != 1 {
		b.Fatalf("%d results", len(rs))
	}
	d, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok || d["allow"] != true || len(d["fields"].(map[string]any)) != len(orderFields) {
		b.Fatalf("decision %v", rs[0].Expressions[0].Value)
	}
}

// BenchmarkOPAEval is the baseline: a plain prepared Eval of the same
// policy on the same input, as an integration without a plan cache would do
// per request.
func BenchmarkOPAEval(b *testing.B) {
	pq := plainQuery(b)
	in := policyInput(benchRequest())
	b.ReportAllocs()
	for b.Loop() {
		plainEval(b, pq, in)
	}
}

// BenchmarkOPAEvalParallel is BenchmarkOPAEval from GOMAXPROCS goroutines
// sharing the prepared query.
func BenchmarkOPAEvalParallel(b *testing.B) {
	pq := plainQuery(b)
	in := policyInput(benchRequest())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			plainEval(b, pq, in)
		}
	})
}

// BenchmarkEngineEvaluate is one uncached Engine.Evaluate: the engine's own
// path (AST input, AST result, AST data store), paid on a plan-cache miss.
func BenchmarkEngineEvaluate(b *testing.B) {
	e := engine(b)
	in := policyInput(benchRequest())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Evaluate(ctx, in)
		if err != nil || !d.Allow || len(d.Fields) != len(orderFields) {
			b.Fatalf("decision %+v, %v", d, err)
		}
	}
}
