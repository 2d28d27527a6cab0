package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

// rfc8032Seed is the secret key of RFC 8032 §7.1 test 1.
const rfc8032Seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

func rfc8032Key(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	seed, err := hex.DecodeString(rfc8032Seed)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func newKeyring(t testing.TB) (*token.Keyring, string) {
	t.Helper()
	dir := t.TempDir()
	kr, err := token.LoadKeyring(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return kr, dir
}

// writeKeyFile writes priv as a PKCS#8 PEM file, as an operator would.
func writeKeyFile(t *testing.T, path string, priv ed25519.PrivateKey, mode os.FileMode) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by the umask
		t.Fatal(err)
	}
}

func TestKeyIDKnownAnswer(t *testing.T) {
	// base64url(SHA-256(pub))[:16], computed independently (Python hashlib).
	pub := rfc8032Key(t).Public().(ed25519.PublicKey)
	if got, want := token.KeyID(pub), "If4x36FUomFia_hU"; got != want {
		t.Fatalf("KeyID = %q, want %q", got, want)
	}
}

func TestLoadKeyringCreates(t *testing.T) {
	dir := t.TempDir()
	kr, err := token.LoadKeyring(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	kid, priv := kr.Current()
	if kid != token.KeyID(priv.Public().(ed25519.PublicKey)) {
		t.Fatalf("current kid %q does not name the current key", kid)
	}
	signing := filepath.Join(dir, token.SigningSubdir)
	for path, want := range map[string]os.FileMode{
		signing:                            0o700 | os.ModeDir,
		filepath.Join(signing, kid+".pem"): 0o600,
		filepath.Join(signing, "current"):  0o600,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode(), want)
		}
	}

	// Loading again, with or without create, finds the same key.
	for _, create := range []bool{true, false} {
		again, err := token.LoadKeyring(dir, create)
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := again.Current(); k != kid {
			t.Errorf("reload (create=%v): current %q, want %q", create, k, kid)
		}
	}
}

func TestLoadKeyringProductionNeedsKey(t *testing.T) {
	dir := t.TempDir()
	_, err := token.LoadKeyring(dir, false)
	if err == nil || !strings.Contains(err.Error(), "brokerctl keys init") {
		t.Fatalf("LoadKeyring(create=false) on an empty dir = %v, want an error telling how to create a key", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, token.SigningSubdir)); !os.IsNotExist(statErr) {
		t.Fatalf("LoadKeyring(create=false) created the signing directory")
	}
	if _, err := token.LoadKeyring("", true); err == nil {
		t.Fatal("LoadKeyring with no directory succeeded")
	}
}

func TestLoadKeyringHandPlacedKey(t *testing.T) {
	dir := t.TempDir()
	signing := filepath.Join(dir, token.SigningSubdir)
	if err := os.Mkdir(signing, 0o700); err != nil {
		t.Fatal(err)
	}
	priv := rfc8032Key(t)
	writeKeyFile(t, filepath.Join(signing, "operator.pem"), priv, 0o600)
	kr, err := token.LoadKeyring(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if kid, key := kr.Current(); kid != "If4x36FUomFia_hU" || !key.Equal(priv) {
		t.Fatalf("Current = %q: want the hand-placed key", kid)
	}
}

func TestLoadKeyringRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, signing string)
		want    string // in the error
	}{
		{"key readable by others", func(t *testing.T, signing string) {
			writeKeyFile(t, filepath.Join(signing, "k.pem"), rfc8032Key(t), 0o644)
		}, "chmod 600"},
		{"directory writable by others", func(t *testing.T, signing string) {
			writeKeyFile(t, filepath.Join(signing, "k.pem"), rfc8032Key(t), 0o600)
			if err := os.Chmod(signing, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "chmod 700"},
		{"not a key", func(t *testing.T, signing string) {
			if err := os.WriteFile(filepath.Join(signing, "k.pem"), []byte("SECRET-CONTENT"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a PKCS#8 PEM Ed25519 private key"},
		{"an EC key", func(t *testing.T, signing string) {
			// A valid PKCS#8 PEM of another key type.
			ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(ec)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(signing, "k.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a PKCS#8 PEM Ed25519 private key"},
		{"two keys, no current", func(t *testing.T, signing string) {
			writeKeyFile(t, filepath.Join(signing, "a.pem"), rfc8032Key(t), 0o600)
			_, other, _ := ed25519.GenerateKey(nil)
			writeKeyFile(t, filepath.Join(signing, "b.pem"), other, 0o600)
		}, "no \"current\" file"},
		{"current names a missing key", func(t *testing.T, signing string) {
			writeKeyFile(t, filepath.Join(signing, "a.pem"), rfc8032Key(t), 0o600)
			if err := os.WriteFile(filepath.Join(signing, "current"), []byte("nonexistent\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "names a key that is not in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			signing := filepath.Join(dir, token.SigningSubdir)
			if err := os.Mkdir(signing, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, signing)
			for _, create := range []bool{false, true} {
				_, err := token.LoadKeyring(dir, create)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("LoadKeyring(create=%v) = %v, want an error containing %q", create, err, tt.want)
				}
				if err != nil && strings.Contains(err.Error(), "SECRET-CONTENT") {
					t.Errorf("error echoes the key file: %v", err)
				}
			}
		})
	}
}

func TestRotateAndRetire(t *testing.T) {
	kr, dir := newKeyring(t)
	first, _ := kr.Current()

	second, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := kr.Current(); cur != second || second == first {
		t.Fatalf("after Rotate: current %q, returned %q, first %q", cur, second, first)
	}
	if got := kr.KeyIDs(); !slices.Equal(got, []string{second, first}) {
		t.Fatalf("KeyIDs = %v, want [new previous]", got)
	}

	// Another process sharing the directory sees the same ring.
	other, err := token.LoadKeyring(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := other.KeyIDs(); !slices.Equal(got, []string{second, first}) {
		t.Fatalf("second process KeyIDs = %v", got)
	}

	// A second rotation keeps current + previous and retires the oldest.
	third, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.KeyIDs(); !slices.Equal(got, []string{third, second}) {
		t.Fatalf("KeyIDs after two rotations = %v, want [%s %s]", got, third, second)
	}
	if _, err := os.Stat(filepath.Join(dir, token.SigningSubdir, first+".pem")); !os.IsNotExist(err) {
		t.Fatalf("the oldest key file is still on disk: %v", err)
	}
	if err := other.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := other.KeyIDs(); !slices.Equal(got, []string{third, second}) {
		t.Fatalf("second process after Reload: KeyIDs = %v", got)
	}

	if err := kr.Retire(third); broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("Retire(current) = %v, want EConflict", err)
	}
	if err := kr.Retire("nope"); broker.ErrorCode(err) != broker.ENotFound {
		t.Fatalf("Retire(unknown) = %v, want ENotFound", err)
	}
	if err := kr.Retire(second); err != nil {
		t.Fatal(err)
	}
	if _, ok := kr.PublicKey(second); ok {
		t.Fatal("retired key still in the ring")
	}
	// The other process retires it too: gone from disk, dropped from memory.
	if err := other.Retire(second); err != nil {
		t.Fatalf("Retire of a key another process retired = %v", err)
	}
	if got := other.KeyIDs(); !slices.Equal(got, []string{third}) {
		t.Fatalf("KeyIDs = %v, want [%s]", got, third)
	}
}

func TestJWKSShape(t *testing.T) {
	kr, _ := newKeyring(t)
	prev, _ := kr.Current()
	cur, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	dec := json.NewDecoder(strings.NewReader(string(kr.JWKS())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want current + previous", len(set.Keys))
	}
	for i, kid := range []string{cur, prev} {
		k := set.Keys[i]
		if len(k) != 6 || k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["use"] != "sig" || k["alg"] != "EdDSA" || k["kid"] != kid {
			t.Errorf("key %d = %v, want an Ed25519 signing key %s", i, k, kid)
		}
		x, err := base64.RawURLEncoding.DecodeString(k["x"])
		if err != nil || len(x) != ed25519.PublicKeySize {
			t.Fatalf("key %d: x is not 32 bytes of unpadded base64url: %v", i, err)
		}
		pub, _ := kr.PublicKey(kid)
		if !pub.Equal(ed25519.PublicKey(x)) || token.KeyID(x) != kid {
			t.Errorf("key %d: x does not match the key named %s", i, kid)
		}
	}
}

// TestConcurrentRotations plays brokerctl and brokerd rotating the same
// directory at once: the lock serialises them, and the directory ends in a
// state both can load, with current + previous only.
func TestConcurrentRotations(t *testing.T) {
	_, dir := newKeyring(t)
	rings := make([]*token.Keyring, 2)
	for i := range rings {
		kr, err := token.LoadKeyring(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		rings[i] = kr
	}
	errs := make(chan error, len(rings))
	for _, kr := range rings {
		go func() {
			var err error
			for range 10 {
				if _, err = kr.Rotate(); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range rings {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	final, err := token.LoadKeyring(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	pems, _ := filepath.Glob(filepath.Join(dir, token.SigningSubdir, "*.pem"))
	if len(final.KeyIDs()) != 2 || len(pems) != 2 {
		t.Fatalf("after concurrent rotations: ring %v, %d key files; want current + previous", final.KeyIDs(), len(pems))
	}
	// The last rotation's ring agrees with the disk.
	cur, _ := final.Current()
	if c0, _ := rings[0].Current(); c0 != cur {
		if c1, _ := rings[1].Current(); c1 != cur {
			t.Fatalf("neither process's current key (%s, %s) is the one on disk (%s)", c0, c1, cur)
		}
	}
}
