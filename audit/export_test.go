package audit_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/audit"
)

// writeExport returns a complete export of m at size, with the signed
// checkpoints at the history sizes in its header.
func writeExport(t testing.TB, m *memLog, size uint64, history ...uint64) []byte {
	t.Helper()
	k := testKey(9)
	h := audit.ExportHeader{Format: audit.ExportFormat, Checkpoint: string(signed(t, k, m, size))}
	for _, s := range history {
		h.History = append(h.History, string(signed(t, k, m, s)))
	}
	var buf bytes.Buffer
	w, err := audit.NewExportWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.leaves[:size] {
		if err := w.WriteLeaf(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var exportKey = audit.PublicKey{Name: testOrigin, Key: pub(testKey(9))}

func TestVerifyExport(t *testing.T) {
	m := sampleLog(t, 1000)
	for _, size := range []uint64{0, 1, 2, 999, 1000} {
		exp := writeExport(t, m, size)
		var calls int
		var last uint64
		n, root, err := audit.VerifyExport(bytes.NewReader(exp), exportKey, func(done, total uint64) {
			calls++
			last = done
			if total != size {
				t.Errorf("progress total = %d", total)
			}
		})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if n != size || !bytes.Equal(root, m.root(size)) || calls == 0 || last != size {
			t.Fatalf("size %d: got %d %x, %d progress calls ending at %d", size, n, root, calls, last)
		}
	}
}

// lines splits an export into its lines (newline kept).
func lines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func join(ls [][]byte) []byte { return bytes.Join(ls, nil) }

func TestVerifyExportTamper(t *testing.T) {
	m := sampleLog(t, 50)
	good := writeExport(t, m, 50, 10, 20, 30, 40)
	edit := func(f func(ls [][]byte) [][]byte) []byte {
		ls := lines(bytes.Clone(good))
		for i := range ls {
			ls[i] = bytes.Clone(ls[i])
		}
		return join(f(ls))
	}
	reencode := func(i uint64, f func(*audit.Entry)) []byte {
		e := sampleEntry(i)
		f(&e)
		b, _ := e.Canonical()
		return append(b, '\n')
	}
	tests := []struct {
		name      string
		export    []byte
		wantIndex uint64
		wantEnd   uint64 // 0: an exact index
		wantErr   error  // instead of a VerifyError
	}{
		{name: "edit breaking canonical form", export: edit(func(ls [][]byte) [][]byte {
			ls[13] = bytes.Replace(ls[13], []byte(`"action":"release"`), []byte(`"action": "release"`), 1)
			return ls
		}), wantIndex: 12},
		{name: "canonical edit of a field", export: edit(func(ls [][]byte) [][]byte {
			ls[26] = reencode(25, func(e *audit.Entry) { e.Outcome = audit.OutcomeReleased + "!" })
			return ls
		}), wantIndex: 20, wantEnd: 30},
		{name: "canonical edit without history", export: func() []byte {
			plain := writeExport(t, m, 50)
			ls := lines(plain)
			ls[26] = reencode(25, func(e *audit.Entry) { e.Purpose = "marketing" })
			return join(ls)
		}(), wantIndex: 0, wantEnd: 50},
		{name: "edited index", export: edit(func(ls [][]byte) [][]byte {
			ls[6] = reencode(5, func(e *audit.Entry) { e.Index = 500 })
			return ls
		}), wantIndex: 5},
		{name: "deleted line", export: edit(func(ls [][]byte) [][]byte {
			return append(ls[:8], ls[9:]...)
		}), wantIndex: 7},
		{name: "inserted line", export: edit(func(ls [][]byte) [][]byte {
			forged := reencode(7, func(e *audit.Entry) { e.Actor = "retailer:intruder" })
			return append(ls[:8], append([][]byte{forged}, ls[8:]...)...)
		}), wantIndex: 7},
		{name: "reordered lines", export: edit(func(ls [][]byte) [][]byte {
			ls[3], ls[4] = ls[4], ls[3]
			return ls
		}), wantIndex: 2},
		{name: "duplicated line", export: edit(func(ls [][]byte) [][]byte {
			return append(ls[:11], append([][]byte{ls[10]}, ls[11:]...)...)
		}), wantIndex: 9},
		{name: "missing last entries", export: edit(func(ls [][]byte) [][]byte { return ls[:45] }), wantIndex: 44},
		{name: "extra entry beyond the checkpoint", export: edit(func(ls [][]byte) [][]byte {
			return append(ls, reencode(50, func(*audit.Entry) {}))
		}), wantIndex: 50},
		{name: "last line without newline", export: good[:len(good)-1], wantIndex: 49},
		{name: "blank line", export: edit(func(ls [][]byte) [][]byte {
			return append(ls[:5], append([][]byte{[]byte("\n")}, ls[5:]...)...)
		}), wantIndex: 4},
		{name: "truncated header", export: good[:40], wantErr: audit.ErrMalformedExport},
		{name: "empty file", export: nil, wantErr: audit.ErrMalformedExport},
		{name: "header only, unknown format", export: []byte(`{"format":"other","checkpoint":""}` + "\n"), wantErr: audit.ErrMalformedExport},
		{name: "header with unknown field", export: edit(func(ls [][]byte) [][]byte {
			ls[0] = bytes.Replace(ls[0], []byte(`{`), []byte(`{"x":1,`), 1)
			return ls
		}), wantErr: audit.ErrMalformedExport},
		{name: "checkpoint signed by another key", export: func() []byte {
			ls := lines(bytes.Clone(good))
			h := audit.ExportHeader{Format: audit.ExportFormat, Checkpoint: string(signed(t, testKey(1), m, 50))}
			var buf bytes.Buffer
			w, _ := audit.NewExportWriter(&buf, h)
			_ = w.Flush()
			ls[0] = buf.Bytes()
			return join(ls)
		}(), wantErr: audit.ErrBadSignature},
		{name: "filtered export", export: []byte(`{"format":"sieve-audit/v1+filtered","checkpoint":""}` + "\n"), wantErr: audit.ErrFilteredExport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := audit.VerifyExport(bytes.NewReader(tc.export), exportKey, nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			wantVerifyError(t, err, tc.wantIndex, tc.wantEnd)
		})
	}
}

// wantVerifyError fails unless err is a *VerifyError naming index (and end,
// 0 for an exact index).
func wantVerifyError(t *testing.T, err error, index, end uint64) {
	t.Helper()
	var ve *audit.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *VerifyError", err)
	}
	if ve.Index != index || ve.End != end {
		t.Fatalf("VerifyError{Index: %d, End: %d} (%v), want index %d end %d", ve.Index, ve.End, err, index, end)
	}
}

// TestVerifyExportBatches checks an export of several of the batches the
// verifier's workers take at a time (4,096 lines), with signed sizes at,
// inside and across batch edges: what is reported must be what a check
// of one line at a time reports, the first bad line or the first signed
// size whose root differs, whichever comes first, in whatever order the
// workers finish.
func TestVerifyExportBatches(t *testing.T) {
	const size = 3*4096 + 100
	m := sampleLog(t, size)
	good := writeExport(t, m, size, 4096, 4100, 8191, 9000)
	n, root, err := audit.VerifyExport(bytes.NewReader(good), exportKey, nil)
	if err != nil || n != size || !bytes.Equal(root, m.root(size)) {
		t.Fatalf("good export: %d %x %v", n, root, err)
	}
	// Line k+1 holds entry k (line 0 is the header).
	nonCanonical := func(ls [][]byte, k int) {
		ls[k+1] = bytes.Replace(ls[k+1], []byte(`"action":"release"`), []byte(`"action": "release"`), 1)
	}
	canonicalEdit := func(ls [][]byte, k int) {
		e := sampleEntry(uint64(k))
		e.Purpose = "marketing"
		b, _ := e.Canonical()
		ls[k+1] = append(b, '\n')
	}
	tests := []struct {
		name       string
		edit       func(ls [][]byte) [][]byte
		index, end uint64
	}{
		{"non-canonical first line of the second batch", func(ls [][]byte) [][]byte { nonCanonical(ls, 4096); return ls }, 4096, 0},
		{"non-canonical last line of the first batch", func(ls [][]byte) [][]byte { nonCanonical(ls, 4095); return ls }, 4095, 0},
		{"canonical edit in the third batch", func(ls [][]byte) [][]byte { canonicalEdit(ls, 8500); return ls }, 8191, 9000},
		{"canonical edit after the last history size", func(ls [][]byte) [][]byte { canonicalEdit(ls, 12000); return ls }, 9000, size},
		{"canonical edit before a later bad line", func(ls [][]byte) [][]byte {
			canonicalEdit(ls, 2000)
			nonCanonical(ls, 9500)
			return ls
		}, 0, 4096},
		{"bad line before a later canonical edit", func(ls [][]byte) [][]byte {
			nonCanonical(ls, 3000)
			canonicalEdit(ls, 9500)
			return ls
		}, 3000, 0},
		{"deleted line at a batch edge", func(ls [][]byte) [][]byte { return append(ls[:8192+1], ls[8193+1:]...) }, 8192, 0},
		{"export cut short", func(ls [][]byte) [][]byte { return ls[:10000+1] }, 10000, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ls := lines(bytes.Clone(good))
			for i := range ls {
				ls[i] = bytes.Clone(ls[i])
			}
			_, _, err := audit.VerifyExport(bytes.NewReader(join(tc.edit(ls))), exportKey, nil)
			wantVerifyError(t, err, tc.index, tc.end)
		})
	}
}

func TestExportWriterRejectsOutOfOrder(t *testing.T) {
	m := sampleLog(t, 3)
	var buf bytes.Buffer
	w, err := audit.NewExportWriter(&buf, audit.ExportHeader{Format: audit.ExportFormat, Checkpoint: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLeaf(m.leaves[1]); err == nil {
		t.Fatal("complete export accepted leaf 1 first")
	}
	if err := w.WriteLeaf([]byte(strings.Replace(string(m.leaves[0]), ":", ": ", 1))); err == nil {
		t.Fatal("non-canonical leaf accepted")
	}
}

func TestSelectHistory(t *testing.T) {
	sizes := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	got := audit.SelectHistory(sizes, 3)
	if len(got) != 3 || got[2] != 10 {
		t.Fatalf("SelectHistory = %v", got)
	}
	if got := audit.SelectHistory(sizes[:2], 3); len(got) != 2 {
		t.Fatalf("SelectHistory of a short list = %v", got)
	}
}
