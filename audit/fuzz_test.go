package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sieve-broker/sieve/audit"
)

// FuzzParseEntry checks that the strict parser accepts exactly the
// canonical leaves as defined through encoding/json, that what it accepts
// re-encodes to the same bytes, and that ScanLeaf agrees with it.
func FuzzParseEntry(f *testing.F) {
	for i := uint64(0); i < 3; i++ {
		b, _ := sampleEntry(i).Canonical()
		f.Add(b)
	}
	tricky := sampleEntry(5)
	tricky.Reason = "a<b>&\"\\\n\u2028é\x01"
	tricky.Released = []string{"", "<", "\t"}
	b, _ := tricky.Canonical()
	f.Add(b)
	f.Add([]byte(`{"index":0}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := audit.ParseEntry(b)
		var v audit.LeafView
		scanErr := audit.ScanLeaf(b, &v)
		if (err == nil) != (scanErr == nil) {
			t.Fatalf("ParseEntry err=%v but ScanLeaf err=%v on %q", err, scanErr, b)
		}
		if ref := referenceCanonical(b); ref != (err == nil) {
			t.Fatalf("ParseEntry err=%v but encoding/json reference says canonical=%v on %q", err, ref, b)
		}
		if err != nil {
			if !errors.Is(err, audit.ErrNotCanonical) {
				t.Fatalf("error %v does not wrap ErrNotCanonical", err)
			}
			return
		}
		c, err := e.Canonical()
		if err != nil || !bytes.Equal(c, b) {
			t.Fatalf("accepted %q but it re-encodes to %q (%v)", b, c, err)
		}
		if v.Index != e.Index || v.TimeMicros != e.Time.UnixMicro() || !audit.RawEqual(v.Actor, e.Actor) {
			t.Fatalf("LeafView disagrees with the parsed entry")
		}
		// Outside strings a canonical leaf has no backslash; inside, one
		// starts an escape.
		if v.Escaped != bytes.Contains(b, []byte{'\\'}) {
			t.Fatalf("LeafView.Escaped = %v on %q", v.Escaped, b)
		}
	})
}

// FuzzVerifyInclusion feeds untrusted proof bodies to the decoders and
// verifiers: nothing may panic, and no proof other than the real one may
// verify for a given leaf.
func FuzzVerifyInclusion(f *testing.F) {
	m := sampleLog(f, 40)
	ctx := context.Background()
	for _, c := range []struct{ i, n uint64 }{{0, 1}, {3, 7}, {39, 40}, {16, 33}} {
		h, _ := audit.BuildInclusion(ctx, m, c.i, c.n)
		b, _ := json.Marshal(audit.InclusionProof{Index: c.i, Size: c.n, LeafHash: m.hashes[c.i], Hashes: h})
		f.Add(b)
	}
	f.Add([]byte(`{"index":1,"size":2,"leaf_hash":"","hashes":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := audit.DecodeInclusionProof(b)
		if err != nil {
			if !errors.Is(err, audit.ErrInvalidProof) {
				t.Fatalf("decode error %v does not wrap ErrInvalidProof", err)
			}
			return
		}
		if p.Size == 0 || p.Size > 40 || p.Index >= p.Size {
			_ = p.Verify(m.root(40))
			return
		}
		err = p.Verify(m.root(p.Size))
		want, _ := audit.BuildInclusion(ctx, m, p.Index, p.Size)
		real := bytes.Equal(p.LeafHash, m.hashes[p.Index]) && equalHashes(p.Hashes, want)
		if err == nil && !real {
			// Only the true leaf can verify (a different leaf hash would be a
			// SHA-256 second preimage).
			if !bytes.Equal(p.LeafHash, m.hashes[p.Index]) {
				t.Fatalf("proof for a foreign leaf hash verified: %+v", p)
			}
		}
		if real && err != nil {
			t.Fatalf("the real proof failed: %v", err)
		}
		if err != nil && !errors.Is(err, audit.ErrInvalidProof) && !errors.Is(err, audit.ErrRootMismatch) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		// Consistency decoding shares the limits.
		if cp, err := audit.DecodeConsistencyProof(b); err == nil {
			_ = cp.Verify(m.root(1), m.root(40))
		}
	})
}

// FuzzVerifyExport mutates export files: nothing may panic, and any file
// that verifies must yield the signed size and root.
func FuzzVerifyExport(f *testing.F) {
	m := sampleLog(f, 12)
	good := writeExport(f, m, 12, 4, 8)
	f.Add(good)
	f.Add(writeExport(f, m, 0))
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		size, root, err := audit.VerifyExport(bytes.NewReader(b), exportKey, nil)
		if err != nil {
			return
		}
		if size > 12 || !bytes.Equal(root, m.root(size)) {
			t.Fatalf("verified an export with size %d and a root of another tree", size)
		}
	})
}

// FuzzParseCheckpoint feeds arbitrary notes to the checkpoint parser.
func FuzzParseCheckpoint(f *testing.F) {
	k := testKey(1)
	m := sampleLog(f, 3)
	f.Add(signed(f, k, m, 3))
	f.Add([]byte(testOrigin + "\n3\nAAAA\n\n— x y\n"))
	v, _ := audit.NewVerifier(testOrigin, pub(k))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := audit.ParseCheckpoint(b, v)
		if err != nil {
			if !errors.Is(err, audit.ErrBadSignature) && !errors.Is(err, audit.ErrMalformedCheckpoint) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if cp.Origin != testOrigin || len(cp.Root) != audit.HashSize {
			t.Fatalf("accepted checkpoint %+v", cp)
		}
	})
}
