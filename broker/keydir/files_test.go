package keydir_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker/keydir"
)

func TestPseudonymKey(t *testing.T) {
	t.Run("missing without create is an error", func(t *testing.T) {
		if _, err := keydir.PseudonymKey(t.TempDir(), false); err == nil {
			t.Fatal("no key file, no create: got a key")
		}
	})
	t.Run("created once, then read back the same", func(t *testing.T) {
		dir := t.TempDir()
		k1, err := keydir.PseudonymKey(dir, true)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := keydir.PseudonymKey(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(k1) != 32 || !bytes.Equal(k1, k2) {
			t.Fatalf("key of %d bytes, reread equal: %v", len(k1), bytes.Equal(k1, k2))
		}
		if fi, err := os.Stat(filepath.Join(dir, "pseudonym.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, mode %v", err, fi.Mode())
		}
	})
	t.Run("processes creating at once agree on one key", func(t *testing.T) {
		dir := t.TempDir()
		keys := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := keydir.PseudonymKey(dir, true)
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for _, k := range keys[1:] {
			if !bytes.Equal(k, keys[0]) {
				t.Fatal("two different keys created")
			}
		}
	})
	for name, content := range map[string]string{
		"not hex":   strings.Repeat("zz", 32) + "\n",
		"too short": strings.Repeat("ab", 16) + "\n",
	} {
		t.Run("malformed: "+name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "pseudonym.key"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := keydir.PseudonymKey(dir, true); err == nil {
				t.Fatal("malformed key accepted")
			}
		})
	}
}

func TestTrustFile(t *testing.T) {
	f := keydir.TrustFile{Path: filepath.Join(t.TempDir(), "trusted-checkpoint")}
	if note, err := f.Load(); err != nil || note != "" {
		t.Fatalf("no file yet: %q, %v; want empty", note, err)
	}
	const note = "broker.test\n5\nAAAA\n\n— broker.test sig\n"
	if err := f.Save(note); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load(); err != nil || got != note {
		t.Fatalf("Load = %q, %v; want %q", got, err, note)
	}
	if err := os.WriteFile(f.Path, bytes.Repeat([]byte("x"), audit.MaxCheckpointSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil {
		t.Fatal("a file larger than a checkpoint was loaded")
	}
}
