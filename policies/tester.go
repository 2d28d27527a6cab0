package policies

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// testTimeout bounds one Rego test; the policy's tests take microseconds,
// so hitting it means a runaway rule.
const testTimeout = 30 * time.Second

// Test runs the Rego unit tests of a policy tree (the test_ rules of its
// *_test.rego files) with OPA's tester, over the tree's own data and the
// engine's deterministic built-ins. It is how `go test` runs them, and lets
// an operator check a BROKER_POLICY_DIR override before deploying it. It
// returns an error only when the tests cannot run; failures are results.
func Test(ctx context.Context, fsys fs.FS) ([]*tester.Result, error) {
	src, err := readTree(fsys, true)
	if err != nil {
		return nil, err
	}
	if len(src.tests) == 0 {
		return nil, errors.New("policies: the policy tree has no *_test.rego files")
	}
	modules := maps.Clone(src.modules)
	maps.Copy(modules, src.tests)
	compiler := ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(true)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(inmem.NewFromObject(src.data)).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		SetTimeout(testTimeout).
		RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("policies: running the Rego tests: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	return results, nil
}
