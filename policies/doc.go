// Package policies holds Sieve's release policy and the engine that runs it.
//
// The policy is Rego v1 under sieve/ (directory path = package path) with its
// data in sieve/data.json: for each purpose its lawful basis, the consent it
// needs, the order states that open it, and for each party kind the scopes
// it needs and the fields it may receive with their transforms; the field
// catalogue with each field's data category; and the retention period of
// each category. Every module has its tests beside it in *_test.rego.
//
// The engine compiles the tree once (New, Load, Default) and evaluates
// data.sieve.release.decision for broker.PolicyInput values. It implements
// broker.PolicyEngine and fails closed: an evaluation error, an undefined
// decision or a decision of the wrong shape is an error, which the broker's
// Releaser turns into a denial. Policies may only use deterministic
// built-ins, because the Releaser caches decisions per input and revision.
package policies
