package keydir

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

func ids(keys []Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}

func TestRingRotateHandoverRetire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), LogSubdir)
	if _, err := Load(dir, false); err == nil {
		t.Fatal("Load without create made a key")
	}
	r, err := Load(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Current()
	if got := ids(r.Signers()); len(got) != 1 || got[0] != first.ID {
		t.Fatalf("signers of a fresh ring = %v, want [%s]", got, first.ID)
	}

	var announced Key
	second, err := r.Rotate(time.Hour, func(k Key) error { announced = k; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if announced.ID != second.ID || second.ID == first.ID {
		t.Fatalf("announced %s, rotated to %s (first %s)", announced.ID, second.ID, first.ID)
	}
	// During the handover both sign, the new key first.
	if got := ids(r.Signers()); len(got) != 2 || got[0] != second.ID || got[1] != first.ID {
		t.Fatalf("signers during the handover = %v, want [%s %s]", got, second.ID, first.ID)
	}
	// Another process sees the same.
	other, err := Load(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(other.Signers()); len(got) != 2 {
		t.Fatalf("other process: signers = %v", got)
	}
	// After the handover only the new key signs.
	other.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if got := ids(other.Signers()); len(got) != 1 || got[0] != second.ID {
		t.Fatalf("signers after the handover = %v, want [%s]", got, second.ID)
	}

	// A failed announcement changes nothing and leaves no key behind.
	before := len(r.Keys())
	if _, err := r.Rotate(time.Hour, func(Key) error { return errors.New("audit down") }); err == nil {
		t.Fatal("rotation went ahead although the announcement failed")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Current().ID != second.ID || len(r.Keys()) != before {
		t.Fatalf("after a failed announcement: current %s, %d keys; want %s, %d", r.Current().ID, len(r.Keys()), second.ID, before)
	}

	// Retire: the current key cannot be, the previous one loses its
	// private half, keeps its public half, and stops co-signing.
	if err := r.Retire(second.ID); broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("retire current: %v, want a conflict", err)
	}
	if err := r.Retire("nosuchkey"); !broker.IsNotFound(err) {
		t.Fatalf("retire unknown: %v, want not found", err)
	}
	if err := r.Retire(first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, first.ID+privSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the retired key's private file is still there: %v", err)
	}
	if err := other.Reload(); err != nil {
		t.Fatal(err)
	}
	keys := other.Keys()
	if len(keys) != 2 || keys[0].ID != second.ID || keys[1].ID != first.ID || !keys[1].Retired() ||
		!keys[1].Public.Equal(first.Public) {
		t.Fatalf("keys after retiring = %+v", ids(keys))
	}
	if got := ids(r.Signers()); len(got) != 1 {
		t.Fatalf("a retired previous key still signs: %v", got)
	}
	if _, _, ok := r.Handover(); ok {
		t.Fatal("the handover goes on after the previous key was retired")
	}
	if err := r.Retire(first.ID); err != nil {
		t.Fatalf("retiring twice: %v", err)
	}
}

// writeSigningKey writes a PKCS#8 PEM key as broker/token does.
func writeSigningKey(t *testing.T, dir string) ed25519.PrivateKey {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	id := KeyID(priv.Public().(ed25519.PublicKey))
	if err := os.WriteFile(filepath.Join(dir, id+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestLoadAdoptsTheSigningKey(t *testing.T) {
	keyDir := t.TempDir()
	signing := filepath.Join(keyDir, "signing")
	if err := os.Mkdir(signing, 0o700); err != nil {
		t.Fatal(err)
	}
	old := writeSigningKey(t, signing)
	cur := writeSigningKey(t, signing)
	curID := KeyID(cur.Public().(ed25519.PublicKey))
	if err := os.WriteFile(filepath.Join(signing, "current"), []byte(curID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Production (no create): adopting is no new identity, so it is allowed.
	r, err := LoadAdopting(filepath.Join(keyDir, LogSubdir), false, signing)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Current(); got.ID != curID || !got.Private.Equal(cur) {
		t.Fatalf("current log key %s, want the adopted signing key %s", got.ID, curID)
	}
	keys := r.Keys()
	if len(keys) != 2 || !keys[1].Retired() || !keys[1].Public.Equal(old.Public()) {
		t.Fatalf("the previous signing key is not kept as a public log key: %v", ids(keys))
	}
	// Adoption happens once: a later signing key does not replace the log key.
	writeSigningKey(t, signing)
	r2, err := LoadAdopting(filepath.Join(keyDir, LogSubdir), false, signing)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Current().ID != curID || len(r2.Keys()) != 2 {
		t.Fatalf("reloading changed the ring: current %s, keys %v", r2.Current().ID, ids(r2.Keys()))
	}

	// A fresh deployment gets its own log key.
	fresh, err := LoadAdopting(filepath.Join(t.TempDir(), LogSubdir), true, filepath.Join(t.TempDir(), "signing"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh.Keys()) != 1 {
		t.Fatalf("fresh ring has %d keys", len(fresh.Keys()))
	}
}
