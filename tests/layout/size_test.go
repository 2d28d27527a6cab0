package layout

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Issue 15's size rules: a type with more than maxMethods methods does
// several jobs, and a file longer than maxLines holds several rooms.
const (
	maxMethods = 30
	maxLines   = 800
)

// sizeDebt lists the exported types over maxMethods today, with their
// count, while they are being split (issue 15). Like debt, it may only
// shrink: an entry that no longer exceeds the limit fails the test, and a
// type that grows past its entry fails too.
var sizeDebt = map[string]int{}

// source is one package's non-test Go files.
type source struct {
	ImportPath string
	Dir        string
	GoFiles    []string
}

func moduleSources(t *testing.T) []source {
	t.Helper()
	return goList(t, func(s *source) { s.ImportPath = rel(s.ImportPath) })
}

// methodCounts parses a package's files and returns, for each exported
// type, the number of methods in its method set: those declared on it
// (pointer or value receiver) and those promoted from the types it embeds
// that are declared in the same package (an embedded type from elsewhere
// is counted as none: the rule is about our own types).
func methodCounts(fset *token.FileSet, files []*ast.File) map[string]int {
	declared := map[string]int{}
	embeds := map[string][]string{}
	exported := map[string]bool{}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv != nil && len(d.Recv.List) == 1 {
					declared[baseName(d.Recv.List[0].Type)]++
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					ts, ok := s.(*ast.TypeSpec)
					if !ok {
						continue
					}
					exported[ts.Name.Name] = ts.Name.IsExported()
					if st, ok := ts.Type.(*ast.StructType); ok {
						for _, fld := range st.Fields.List {
							if len(fld.Names) == 0 {
								embeds[ts.Name.Name] = append(embeds[ts.Name.Name], baseName(fld.Type))
							}
						}
					}
				}
			}
		}
	}
	var count func(name string, seen map[string]bool) int
	count = func(name string, seen map[string]bool) int {
		if seen[name] {
			return 0
		}
		seen[name] = true
		n := declared[name]
		for _, e := range embeds[name] {
			n += count(e, seen)
		}
		return n
	}
	out := map[string]int{}
	for name, ok := range exported {
		if ok {
			out[name] = count(name, map[string]bool{})
		}
	}
	return out
}

// baseName is the type name of a receiver or embedded field: T, *T, T[X].
func baseName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return baseName(e.X)
	case *ast.IndexExpr:
		return baseName(e.X)
	case *ast.IndexListExpr:
		return baseName(e.X)
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.X.(*ast.Ident).Name + "." + e.Sel.Name // another package's: never declared here
	}
	return ""
}

func TestTypeSizes(t *testing.T) {
	over := map[string]int{}
	for _, s := range moduleSources(t) {
		fset := token.NewFileSet()
		var files []*ast.File
		for _, name := range s.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(s.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		for name, n := range methodCounts(fset, files) {
			if n > maxMethods {
				over[s.ImportPath+"."+name] = n
			}
		}
	}
	var names []string
	for name := range over {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n, owed := over[name], sizeDebt[name]
		switch {
		case owed == 0:
			t.Errorf("%s has %d methods; at most %d (split it by job)", name, n, maxMethods)
		case n > owed:
			t.Errorf("%s has %d methods, more than its debt entry (%d): the list may only shrink", name, n, owed)
		}
	}
	for name, owed := range sizeDebt {
		if _, ok := over[name]; !ok {
			t.Errorf("sizeDebt entry %s (%d) is paid: remove it", name, owed)
		}
	}
}

func TestFileSizes(t *testing.T) {
	for _, s := range moduleSources(t) {
		for _, name := range s.GoFiles {
			b, err := os.ReadFile(filepath.Join(s.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(b, []byte("\n")); n > maxLines {
				t.Errorf("%s/%s has %d lines; at most %d (a file per room)", s.ImportPath, name, n, maxLines)
			}
		}
	}
}

// TestMethodCounts checks the counter on a synthetic package, so a counter
// that stops counting fails here rather than passing on the real tree.
func TestMethodCounts(t *testing.T) {
	src := `package p
type Big struct{ *inner; other.T }
type inner struct{}
type Small int
type hidden struct{}
func (b *Big) A() {}
func (b Big) b() {}
func (i *inner) C() {}
func (i inner) d() {}
func (s Small) E() {}
func (h hidden) F() {}
type G[T any] struct{}
func (g *G[T]) H() {}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := methodCounts(fset, []*ast.File{f})
	want := map[string]int{"Big": 4, "Small": 1, "G": 1}
	if len(got) != len(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d methods, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if strings.Contains(src, "hidden") && got["hidden"] != 0 {
		t.Errorf("unexported types are not the rule's")
	}
}
