// Package layout holds the test that keeps Sieve's dependency arrows
// pointing the way STYLE.md draws them: cmd → everything; broker/** →
// broker, audit (never commerce/**); commerce → broker; adapters beneath the
// domain they serve, never into an adapter of another technology; audit
// and migrations are leaves; nothing imports cmd/**. size_test.go keeps
// the rooms small: no exported type over 30 methods, no file over 800
// lines (issue 15).
//
// The test asks the go command for the import lists (`go list -json ./...`),
// counting a package's test imports as well as its own: an arrow drawn only
// by a test still ties the two packages together.
package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/sieve-broker/sieve"

// edge is one import arrow: From imports To. Paths inside the module are
// relative to it ("broker/postgres"); others keep their full path.
type edge struct{ From, To string }

// rule forbids a set of arrows. Breaks reports whether e is one of them.
type rule struct {
	Name   string
	Why    string
	Breaks func(e edge) bool
}

// ours reports whether p is a package of this module.
func ours(p string) bool { return !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") && known[p] }

// known holds the module's own packages (filled from go list), so that a
// standard-library path such as "net/http" is not taken for one of ours.
var known = map[string]bool{}

// under reports whether p is dir or a package beneath it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// tech names the technology an adapter package wraps, from the path
// segment that names it ("commerce/httpapi/ui" is an HTTP adapter), or ""
// for a package that is no adapter.
func tech(p string) string {
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "postgres", "pgtest":
			return "postgres"
		case "httpapi":
			return "http"
		}
	}
	return ""
}

// rules is the table of forbidden arrows.
var rules = []rule{
	{
		Name: "broker-not-commerce",
		Why:  "the privacy core and its adapters know nothing of the shop; commerce depends on broker, not back",
		Breaks: func(e edge) bool {
			return under(e.From, "broker") && under(e.To, "commerce")
		},
	},
	{
		Name: "audit-is-a-leaf",
		Why:  "the log and its verifier stand alone, so an auditor can take them without the broker",
		Breaks: func(e edge) bool {
			return under(e.From, "audit") && ours(e.To) && !under(e.To, "audit")
		},
	},
	{
		Name: "migrations-is-a-leaf",
		Why:  "migrations are .sql files and their embed, nothing else",
		Breaks: func(e edge) bool {
			return under(e.From, "migrations") && ours(e.To) && !under(e.To, "migrations")
		},
	},
	{
		Name: "nothing-imports-cmd",
		Why:  "only cmd knows concrete types and wires them; what cmd holds is no library",
		Breaks: func(e edge) bool {
			return !under(e.From, "cmd") && under(e.To, "cmd")
		},
	},
	{
		Name: "adapters-stay-in-their-technology",
		Why:  "an adapter serves its domain's ports; reaching into an adapter of another technology skips the domain",
		Breaks: func(e edge) bool {
			from, to := tech(e.From), tech(e.To)
			return from != "" && to != "" && from != to && ours(e.To)
		},
	},
	{
		Name: "broker-core-is-stdlib",
		Why:  "the core names vocabulary and ports; Fiber, pgx, OPA and age belong to adapters",
		Breaks: func(e edge) bool {
			if e.From != "broker" {
				return false
			}
			for _, p := range []string{"github.com/gofiber/", "github.com/jackc/", "github.com/open-policy-agent/", "filippo.io/age"} {
				if strings.HasPrefix(e.To, p) || e.To == strings.TrimSuffix(p, "/") {
					return true
				}
			}
			return false
		},
	},
}

// violation is a broken rule.
type violation struct {
	Rule string
	edge
}

func (v violation) String() string { return fmt.Sprintf("%s: %s → %s", v.Rule, v.From, v.To) }

// check returns every arrow of edges that a rule forbids, sorted.
func check(edges []edge) []violation {
	var out []violation
	for _, e := range edges {
		for _, r := range rules {
			if r.Breaks(e) {
				out = append(out, violation{r.Name, e})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// pkg is the part of `go list -json` this test reads.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// goList decodes `go list -json` of every package of the module into T,
// with import paths made relative to the module by fix.
func goList[T any](t *testing.T, fix func(*T)) []T {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var all []T
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var v T
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		fix(&v)
		all = append(all, v)
	}
	if len(all) < 10 {
		t.Fatalf("go list found %d packages; expected the whole module", len(all))
	}
	return all
}

// moduleEdges lists the import arrows of every package of the module.
func moduleEdges(t *testing.T) []edge {
	t.Helper()
	pkgs := goList(t, func(p *pkg) {
		p.ImportPath = rel(p.ImportPath)
		known[p.ImportPath] = true
	})
	seen := map[edge]bool{}
	var edges []edge
	for _, p := range pkgs {
		for _, list := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
			for _, to := range list {
				e := edge{p.ImportPath, rel(to)}
				if e.From == e.To || seen[e] {
					continue
				}
				seen[e] = true
				edges = append(edges, e)
			}
		}
	}
	return edges
}

// rel strips the module path from one of our import paths.
func rel(p string) string {
	if p == module {
		return "."
	}
	return strings.TrimPrefix(p, module+"/")
}

// debt lists arrows that break a rule today and are being removed (issue
// 15). It may only shrink: an entry whose arrow is gone fails the test, so
// the list cannot hide a fixed arrow, and any arrow not listed fails too.
var debt = map[string]bool{}

func TestImportRules(t *testing.T) {
	edges := moduleEdges(t)
	found := map[string]bool{}
	for _, v := range check(edges) {
		found[v.String()] = true
		if !debt[v.String()] {
			t.Errorf("forbidden import %s", v)
		}
	}
	for d := range debt {
		if !found[d] {
			t.Errorf("debt entry %q no longer occurs: remove it", d)
		}
	}
}

// TestCheckerCatches runs the checker on a synthetic import list, one
// breaking arrow per rule and allowed arrows beside them, so a rule that
// stops matching fails here rather than passing silently on the real tree.
func TestCheckerCatches(t *testing.T) {
	for _, p := range []string{"audit", "audit/witness", "broker", "broker/postgres", "broker/postgres/pgtest",
		"broker/httpapi", "broker/httpapi/httpapitest", "broker/token", "commerce/httpapi/ui", "commerce", "commerce/postgres",
		"commerce/httpapi", "commerce/whatsapp", "migrations", "policies", "cmd/brokerd", "cmd/internal/wire"} {
		known[p] = true
	}
	cases := []struct {
		name string
		e    edge
		want string // rule broken, "" when allowed
	}{
		{"broker adapter into commerce", edge{"broker/postgres", "commerce"}, "broker-not-commerce"},
		{"broker http test fakes into commerce", edge{"broker/httpapi/httpapitest", "commerce"}, "broker-not-commerce"},
		{"broker root into commerce", edge{"broker", "commerce"}, "broker-not-commerce"},
		{"audit into broker", edge{"audit", "broker"}, "audit-is-a-leaf"},
		{"audit subpackage into policies", edge{"audit/witness", "policies"}, "audit-is-a-leaf"},
		{"migrations into broker", edge{"migrations", "broker"}, "migrations-is-a-leaf"},
		{"broker into cmd", edge{"broker", "cmd/internal/wire"}, "nothing-imports-cmd"},
		{"commerce into cmd", edge{"commerce", "cmd/brokerd"}, "nothing-imports-cmd"},
		{"commerce http into broker postgres", edge{"commerce/httpapi", "broker/postgres"}, "adapters-stay-in-their-technology"},
		{"broker http into broker postgres", edge{"broker/httpapi", "broker/postgres"}, "adapters-stay-in-their-technology"},
		{"commerce postgres into broker http", edge{"commerce/postgres", "broker/httpapi"}, "adapters-stay-in-their-technology"},
		{"broker core into fiber", edge{"broker", "github.com/gofiber/fiber/v2"}, "broker-core-is-stdlib"},
		{"broker core into pgx", edge{"broker", "github.com/jackc/pgx/v5"}, "broker-core-is-stdlib"},
		{"broker core into opa", edge{"broker", "github.com/open-policy-agent/opa/v1/rego"}, "broker-core-is-stdlib"},
		{"broker core into age", edge{"broker", "filippo.io/age"}, "broker-core-is-stdlib"},

		{"commerce into broker", edge{"commerce", "broker"}, ""},
		{"commerce postgres into broker postgres", edge{"commerce/postgres", "broker/postgres"}, ""},
		{"commerce postgres into commerce", edge{"commerce/postgres", "commerce"}, ""},
		{"commerce http into broker http", edge{"commerce/httpapi", "broker/httpapi"}, ""},
		{"ui into httpapi", edge{"commerce/httpapi/ui", "broker/httpapi"}, ""},
		{"ui into the shop", edge{"commerce/httpapi/ui", "commerce"}, ""},
		{"pgtest into broker postgres", edge{"broker/postgres/pgtest", "broker/postgres"}, ""},
		{"audit into its own", edge{"audit/witness", "audit"}, ""},
		{"audit into the standard library", edge{"audit", "crypto/sha256"}, ""},
		{"cmd into cmd", edge{"cmd/brokerd", "cmd/internal/wire"}, ""},
		{"wire into everything", edge{"cmd/internal/wire", "commerce/postgres"}, ""},
		{"broker adapter into pgx", edge{"broker/postgres", "github.com/jackc/pgx/v5"}, ""},
		{"broker core into audit", edge{"broker", "audit"}, ""},
		{"http adapter into token", edge{"broker/httpapi", "broker/token"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := check([]edge{c.e})
			var names []string
			for _, v := range got {
				names = append(names, v.Rule)
			}
			want := []string(nil)
			if c.want != "" {
				want = []string{c.want}
			}
			if strings.Join(names, ",") != strings.Join(want, ",") {
				t.Errorf("check(%s → %s) broke %v, want %v", c.e.From, c.e.To, names, want)
			}
		})
	}
	// Every rule is exercised by at least one case above.
	hit := map[string]bool{}
	for _, c := range cases {
		hit[c.want] = true
	}
	for _, r := range rules {
		if !hit[r.Name] {
			t.Errorf("rule %s has no synthetic case", r.Name)
		}
	}
}
