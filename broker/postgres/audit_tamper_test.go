package postgres_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
)

// tamperCase is one known-answer file of audit/testdata/tamper: an edit an
// attacker makes to the log, and the first bad index (and end of the range,
// when only a signed root bounds it) each verifier must report.
type tamperCase struct {
	Op     string `json:"op"` // delete, swap, truncate, edit
	Index  uint64 `json:"index"`
	With   uint64 `json:"with"`  // swap
	Actor  string `json:"actor"` // edit: the new actor, hash recomputed
	Want   tamperWant
	WantDB *tamperWant `json:"want_db"` // when the database verifier, with its stored subtrees, knows more
}

type tamperWant struct {
	Index uint64 `json:"index"`
	End   uint64 `json:"end"`
}

// TestAuditTamperKnownAnswers runs every known-answer tamper case against
// both verifiers the log has: the offline check of an export
// (audit.VerifyExport) and the database check (VerifyAudit). They share one
// core (audit.Run, audit.Joiner) and must agree but where the database's
// stored subtree hashes bound an edit more tightly.
func TestAuditTamperKnownAnswers(t *testing.T) {
	files, err := filepath.Glob("../../audit/testdata/tamper/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no known-answer files: %v", err)
	}
	tpl := auditPopulatedTemplate(t)
	_, key := auditTestSigner(t)
	ctx := context.Background()
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var tc tamperCase
			if err := json.Unmarshal(b, &tc); err != nil {
				t.Fatal(err)
			}
			db := auditCloneDB(t, tpl)

			t.Run("export", func(t *testing.T) {
				var buf bytes.Buffer
				if err := db.AuditReports().ExportAudit(ctx, &buf, broker.AuditFilter{}, postgres.ExportJSONL); err != nil {
					t.Fatal(err)
				}
				_, _, err := audit.VerifyExport(bytes.NewReader(tamperExport(t, buf.Bytes(), tc)), key, nil)
				checkTamperAnswer(t, err, tc.Want)
			})
			t.Run("database", func(t *testing.T) {
				tamperDB(t, db, tc)
				_, _, err := db.AuditReports().VerifyAudit(ctx, key, nil)
				want := tc.Want
				if tc.WantDB != nil {
					want = *tc.WantDB
				}
				checkTamperAnswer(t, err, want)
			})
		})
	}
}

func checkTamperAnswer(t *testing.T, err error, want tamperWant) {
	t.Helper()
	var ve *audit.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *VerifyError", err)
	}
	if ve.Index != want.Index || ve.End != want.End {
		t.Fatalf("VerifyError{Index: %d, End: %d} (%v), want index %d end %d", ve.Index, ve.End, err, want.Index, want.End)
	}
}

// editedLeaf returns leaf with its actor replaced, re-encoded canonically.
func editedLeaf(t *testing.T, leaf []byte, actor string) []byte {
	t.Helper()
	e, err := audit.ParseEntry(leaf)
	if err != nil {
		t.Fatal(err)
	}
	e.Actor = actor
	out, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tamperExport applies tc to a JSONL export: a header line, then the leaf
// of entry i on line i+2.
func tamperExport(t *testing.T, export []byte, tc tamperCase) []byte {
	t.Helper()
	lines := bytes.SplitAfter(export, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	header, leaves := lines[0], lines[1:]
	switch tc.Op {
	case "delete":
		leaves = append(leaves[:tc.Index:tc.Index], leaves[tc.Index+1:]...)
	case "swap":
		leaves[tc.Index], leaves[tc.With] = leaves[tc.With], leaves[tc.Index]
	case "truncate":
		leaves = leaves[:tc.Index]
	case "edit":
		leaves[tc.Index] = append(editedLeaf(t, bytes.TrimSuffix(leaves[tc.Index], []byte("\n")), tc.Actor), '\n')
	default:
		t.Fatalf("unknown op %q", tc.Op)
	}
	return bytes.Join(append([][]byte{header}, leaves...), nil)
}

// tamperDB applies tc to the stored log, as an attacker with owner rights.
func tamperDB(t *testing.T, db *postgres.DB, tc tamperCase) {
	t.Helper()
	switch tc.Op {
	case "delete":
		auditTamper(t, db, fmt.Sprintf(`DELETE FROM audit_log WHERE idx = %d`, tc.Index))
	case "swap":
		auditTamper(t, db, fmt.Sprintf(`UPDATE audit_log SET idx = CASE idx WHEN %[1]d THEN -%[2]d - 1 ELSE -%[1]d - 1 END
			WHERE idx IN (%[1]d, %[2]d)`, tc.Index, tc.With),
			`UPDATE audit_log SET idx = -idx - 1 WHERE idx < 0`)
	case "truncate":
		auditTamper(t, db, fmt.Sprintf(`DELETE FROM audit_log WHERE idx >= %d`, tc.Index))
	case "edit":
		e, err := db.AuditTree().AuditEntry(context.Background(), tc.Index)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		edited := editedLeaf(t, leaf, tc.Actor)
		hexOf := func(b []byte) string { return `'\x` + hex.EncodeToString(b) + `'::bytea` }
		auditTamper(t, db, fmt.Sprintf(`UPDATE audit_log SET leaf = %s, leaf_hash = %s, %s WHERE idx = %d`,
			hexOf(edited), hexOf(audit.LeafHash(edited)), auditSetKey(2, "'"+tc.Actor+"'"), tc.Index))
	default:
		t.Fatalf("unknown op %q", tc.Op)
	}
}
