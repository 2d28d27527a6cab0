package httpapi

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDomainCountersDeclared finds every domain counter the code counts
// (inc("sieve_…", …) and Inc("sieve_…", …) outside tests) and checks that
// domainCounters declares it, with help of its own and as many labels as
// the call passes; Inc counts nothing for an undeclared name.
func TestDomainCountersDeclared(t *testing.T) {
	declared := map[string]int{}
	for _, d := range domainCounters {
		if _, dup := declared[d.name]; dup {
			t.Errorf("%s declared twice", d.name)
		}
		declared[d.name] = len(d.labels)
		if d.help == "" || d.help == "Domain event count." {
			t.Errorf("%s has no help of its own", d.name)
		}
	}
	call := regexp.MustCompile(`\b[iI]nc\("(sieve_[a-z_]+)"((?:,[^,)]+)*)\)`)
	used := map[string]bool{}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
			n, ok := declared[m[1]]
			if !ok {
				t.Errorf("%s: %s is counted but not declared in domainCounters", path, m[1])
				continue
			}
			if got := strings.Count(m[2], ","); got != n {
				t.Errorf("%s: %s counted with %d labels, declared with %d", path, m[1], got, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(used) < 10 {
		t.Fatalf("found only %d counted names: the scan is broken", len(used))
	}
	for name := range declared {
		if !used[name] {
			t.Errorf("%s is declared but never counted", name)
		}
	}
}

// TestIncCountsOnlyDeclared: a declared counter counts with its labels; an
// undeclared name or a wrong label count registers nothing new.
func TestIncCountsOnlyDeclared(t *testing.T) {
	m := NewMetrics()
	m.Inc("sieve_outbox_total", "whatsapp", "sent")
	m.Inc("sieve_outbox_total", "whatsapp", "sent")
	m.Inc("sieve_outbox_total", "whatsapp")
	m.Inc("sieve_inbox_failed_total")
	m.Inc("sieve_made_up_total", "x")
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			values[key] = mt.GetCounter().GetValue()
		}
		if mf.GetName() == "sieve_made_up_total" {
			t.Fatal("an undeclared counter was registered")
		}
		if strings.HasPrefix(mf.GetName(), "sieve_") && mf.GetHelp() == "Domain event count." {
			t.Errorf("%s has the generic help", mf.GetName())
		}
	}
	if got := values["sieve_outbox_total kind=whatsapp outcome=sent"]; got != 2 {
		t.Errorf("outbox sent = %v, want 2 (%v)", got, values)
	}
	if got := values["sieve_inbox_failed_total"]; got != 1 {
		t.Errorf("inbox failed = %v, want 1", got)
	}
	if len(values) > 0 {
		for k := range values {
			if strings.HasPrefix(k, "sieve_outbox_total kind=whatsapp outcome=") && k != "sieve_outbox_total kind=whatsapp outcome=sent" {
				t.Errorf("a short label list counted: %s", k)
			}
		}
	}
}
