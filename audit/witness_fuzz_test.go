package audit_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/sieve-broker/sieve/audit"
)

// FuzzParsePolicy: a witness policy never panics, and a parsed one keeps
// its invariants (quorum within the witnesses, every witness with a key).
func FuzzParsePolicy(f *testing.F) {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	vk := audit.CosignatureVerifierKey("w.test/a", pub)
	f.Add([]byte("witness a " + vk + " http://127.0.0.1:1\nquorum 1\n"))
	f.Add([]byte("# c\nlog x\nquorum 0\n"))
	f.Add([]byte("witness a w+00000000+BA== http://x\nquorum 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := audit.ParsePolicy(b)
		if err != nil {
			return
		}
		if p.Quorum < 0 || p.Quorum > len(p.Witnesses) {
			t.Fatalf("quorum %d of %d witnesses", p.Quorum, len(p.Witnesses))
		}
		for _, w := range p.Witnesses {
			if w.Verifier == nil || len(w.Key) != ed25519.PublicKeySize {
				t.Fatalf("witness %q without a key", w.Name)
			}
		}
	})
}

// FuzzReceipt: a receipt file from anyone never panics the parser or the
// check, and never verifies without the log's signature.
func FuzzReceipt(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := audit.PublicKey{Name: "sieve.test", Key: key.Public().(ed25519.PublicKey)}
	leaf := audit.LeafHash([]byte("x"))
	n, _ := audit.SignCheckpoint(key, "sieve.test", 1, leaf)
	good, _ := json.Marshal(audit.Receipt{Format: audit.ReceiptFormat, Index: 0, LeafHash: leaf, Checkpoint: string(n), Proof: [][]byte{}})
	f.Add(good, "0-"+"00000000")
	f.Add([]byte(`{"format":"sieve-receipt/v1","index":5,"leaf_hash":"","checkpoint":"","proof":null}`), "")
	f.Fuzz(func(t *testing.T, b []byte, short string) {
		audit.ParseShortReceipt(short) //nolint:errcheck
		r, err := audit.ParseReceipt(b)
		if err != nil {
			return
		}
		if _, err := r.Verify([]audit.PublicKey{pub}, nil, short); err == nil {
			if _, err := pub.VerifyCheckpoint([]byte(r.Checkpoint)); err != nil {
				t.Fatal("a receipt verified without a valid log signature")
			}
		}
	})
}
