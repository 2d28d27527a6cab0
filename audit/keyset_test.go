package audit_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/audit"
)

// A verifier key's base64 may hold '+', the separator of its parts: the
// key must still parse (it did not when the last '+' was taken as the
// separator, about one key in three).
func TestParsePublicKeyWithPlusInBase64(t *testing.T) {
	found := 0
	for seed := byte(1); seed < 60; seed++ {
		k := pub(testKey(seed))
		vkey, _ := audit.VerifierKey(testOrigin, k)
		if !strings.Contains(strings.SplitN(vkey, "+", 3)[2], "+") {
			continue
		}
		found++
		got, err := audit.ParsePublicKey(vkey)
		if err != nil || !got.Key.Equal(k) || got.Name != testOrigin {
			t.Fatalf("ParsePublicKey(%q) = %+v, %v", vkey, got, err)
		}
	}
	if found == 0 {
		t.Fatal("no test key has a '+' in its base64")
	}
}

type ed25519Key = ed25519.PrivateKey

func TestKeySetAndLoadPublicKeys(t *testing.T) {
	a, b, c := testKey(1), testKey(2), testKey(3)
	root := make([]byte, audit.HashSize)
	sign := func(keys ...int) []byte {
		all := []ed25519Key{a, b, c}
		var ks []ed25519Key
		for _, i := range keys {
			ks = append(ks, all[i])
		}
		n, err := audit.SignCheckpointKeys(ks, testOrigin, 7, root)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	vk := func(k ed25519Key) string { s, _ := audit.VerifierKey(testOrigin, pub(k)); return s }

	// Several signature lines: any one pinned key verifies.
	both := sign(1, 0)
	if n := len(audit.NoteSigners(both)); n != 2 {
		t.Fatalf("%d signature lines", n)
	}
	for _, k := range []ed25519Key{a, b} {
		if _, err := (audit.PublicKey{Name: testOrigin, Key: pub(k)}).VerifyCheckpoint(both); err != nil {
			t.Fatalf("one of two signers does not verify: %v", err)
		}
	}
	set := audit.KeySet{{Name: testOrigin, Key: pub(c)}, {Name: testOrigin, Key: pub(a)}}
	if cp, err := set.VerifyCheckpoint(sign(0)); err != nil || cp.Size != 7 {
		t.Fatalf("key set: %+v %v", cp, err)
	}
	if _, err := set.VerifyCheckpoint(sign(1)); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("a note by a key outside the set: %v", err)
	}
	if _, err := set.VerifyCheckpoint([]byte("junk")); !errors.Is(err, audit.ErrMalformedCheckpoint) {
		t.Fatalf("junk: %v", err)
	}

	// LoadPublicKeys: a key, a list file, a directory of .pub files (with
	// private keys and other files beside them, skipped).
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemOf := func(k ed25519Key) string {
		der, _ := x509.MarshalPKIXPublicKey(pub(k))
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(c)
	keysDir := filepath.Join(dir, "log")
	if err := os.Mkdir(keysDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"a.pub": pemOf(a), "b.pub": pemOf(b),
		"c.pem": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})), "current": "cid\n"} {
		if err := os.WriteFile(filepath.Join(keysDir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		arg  string
		n    int
	}{
		{"one key", vk(a), 1},
		{"list", write("list", "# keys\n"+vk(a)+"\n\n"+vk(b)+"\n"), 2},
		{"pem blocks", write("pems", pemOf(a)+pemOf(c)), 2},
		{"directory", keysDir, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := audit.LoadPublicKeys(tc.arg)
			if err != nil || len(ks) != tc.n {
				t.Fatalf("%d keys, %v; want %d", len(ks), err, tc.n)
			}
		})
	}
	for _, bad := range []string{"nope", write("bad-list", vk(a)+"\nnot a key\n"), write("empty", "# none\n"), t.TempDir()} {
		if _, err := audit.LoadPublicKeys(bad); err == nil {
			t.Errorf("LoadPublicKeys(%q) succeeded", bad)
		}
	}
}

// FuzzParsePublicKeys: a key list handed to the offline verify never
// panics, and every key it yields round-trips through its string form.
func FuzzParsePublicKeys(f *testing.F) {
	vk, _ := audit.VerifierKey(testOrigin, pub(testKey(1)))
	der, _ := x509.MarshalPKIXPublicKey(pub(testKey(2)))
	f.Add([]byte(vk + "\n# c\n"))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("a+b+c\n\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := audit.ParsePublicKeys(b)
		if err != nil {
			return
		}
		for _, k := range ks {
			back, err := audit.ParsePublicKey(k.String())
			if err != nil || !back.Key.Equal(k.Key) || back.Name != k.Name {
				t.Fatalf("%q does not round-trip: %+v %v", k.String(), back, err)
			}
		}
	})
}
