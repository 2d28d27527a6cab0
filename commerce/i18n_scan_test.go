package commerce

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEveryReplyLiteralHasAnEntry reads this package's source and checks
// that every literal a reply shows a shopper (Body, Title, Header, Footer,
// Button), line by line, is in the chat catalogue, so a string added with
// a new feature cannot reach a Hindi shopper in English (the catalogue
// itself refuses to load when a language misses an entry). Replies built
// with fmt.Sprintf are patterns, covered by TestChatStringsAllTranslated.
func TestEveryReplyLiteralHasAnEntry(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	ls := (&Conversation{}).languages()
	fset := token.NewFileSet()
	checked := 0
	var lit func(e ast.Expr) (string, bool)
	lit = func(e ast.Expr) (string, bool) {
		switch v := e.(type) {
		case *ast.BasicLit:
			if v.Kind == token.STRING {
				s, err := strconv.Unquote(v.Value)
				return s, err == nil
			}
		case *ast.BinaryExpr:
			a, ok1 := lit(v.X)
			b, ok2 := lit(v.Y)
			if ok1 && ok2 {
				return a + b, true
			}
		}
		return "", false
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			k, ok := kv.Key.(*ast.Ident)
			if !ok || (k.Name != "Body" && k.Name != "Title" && k.Name != "Header" && k.Name != "Footer" && k.Name != "Button") {
				return true
			}
			s, ok := lit(kv.Value)
			if !ok {
				return true
			}
			checked++
			for _, line := range strings.Split(s, "\n") {
				if !ls.Known(line) {
					t.Errorf("%s: %q has no entry in commerce/i18n", fset.Position(kv.Pos()), line)
				}
			}
			return true
		})
	}
	if checked < 50 {
		t.Fatalf("only %d reply literals found: the scan is broken", checked)
	}
}
