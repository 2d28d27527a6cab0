package audit_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/audit"
)

func TestParsePolicy(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	vk := audit.CosignatureVerifierKey("w.test/a", pub)
	vk2 := audit.CosignatureVerifierKey("w.test/b", pub2)
	plain, _ := audit.VerifierKey("w.test/a", pub) // an Ed25519 note key, not a cosignature key
	good := "# witnesses\nlog sieve.test\nwitness a " + vk + " http://127.0.0.1:1/\n\nwitness b " + vk2 + " https://w.example/x\nquorum 2\n"
	p, err := audit.ParsePolicy([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Witnesses) != 2 || p.Quorum != 2 || p.Witnesses[0].URL != "http://127.0.0.1:1" || p.Witnesses[1].KeyName != "w.test/b" {
		t.Fatalf("parsed %+v", p)
	}
	for name, text := range map[string]string{
		"no quorum":       "witness a " + vk + " http://127.0.0.1:1\n",
		"quorum too big":  "witness a " + vk + " http://127.0.0.1:1\nquorum 2\n",
		"two quorums":     "witness a " + vk + " http://127.0.0.1:1\nquorum 1\nquorum 1\n",
		"negative":        "quorum -1\n",
		"not a number":    "quorum one\n",
		"leading zero":    "witness a " + vk + " http://127.0.0.1:1\nquorum 01\n",
		"unknown keyword": "witnes a " + vk + " http://127.0.0.1:1\nquorum 1\n",
		"missing URL":     "witness a " + vk + "\nquorum 1\n",
		"plain note key":  "witness a " + plain + " http://127.0.0.1:1\nquorum 1\n",
		"bad key hash":    "witness a " + strings.Replace(vk, "+", "+0", 1)[:len(vk)] + " http://127.0.0.1:1\nquorum 1\n",
		"ftp URL":         "witness a " + vk + " ftp://127.0.0.1:1\nquorum 1\n",
		"duplicate name":  "witness a " + vk + " http://127.0.0.1:1\nwitness a " + vk2 + " http://127.0.0.1:2\nquorum 1\n",
		"duplicate key":   "witness a " + vk + " http://127.0.0.1:1\nwitness b " + vk + " http://127.0.0.1:2\nquorum 1\n",
		"too large":       strings.Repeat("#", audit.MaxPolicySize+1),
	} {
		if _, err := audit.ParsePolicy([]byte(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A note carrying only the log's signature has no cosignature; quorum 0
// accepts it.
func TestQuorumZero(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	n, err := audit.SignCheckpoint(key, "sieve.test", 1, audit.LeafHash([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := audit.ParsePolicy([]byte("witness a " + audit.CosignatureVerifierKey("w.test/a", pub) + " http://127.0.0.1:1\nquorum 1\n"))
	if err := p.CheckQuorum(n); !errors.Is(err, audit.ErrNoQuorum) {
		t.Fatalf("quorum 1 without cosignature: %v", err)
	}
	p.Quorum = 0
	if err := p.CheckQuorum(n); err != nil {
		t.Fatalf("quorum 0: %v", err)
	}
}

// A verifier key whose base64 holds '+' parses (about half of all keys:
// ParsePublicKey once split the key at its last '+').
func TestParseVerifierKeyWithPlus(t *testing.T) {
	n := 0
	for n < 20 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		vk, err := audit.VerifierKey("sieve.test", pub)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(vk, "+") < 3 {
			continue
		}
		n++
		k, err := audit.ParsePublicKey(vk)
		if err != nil || k.Name != "sieve.test" || !k.Key.Equal(pub) {
			t.Fatalf("%s: %v", vk, err)
		}
	}
}
