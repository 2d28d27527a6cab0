package seal_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/seal"
)

func TestLoadKeyringProductionRequiresAnIdentity(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // in the error
	}{
		{name: "no directory", setup: func(*testing.T, string) {}, want: "brokerctl keys init"},
		{name: "empty age directory", setup: func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "age"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, want: "brokerctl keys init"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := seal.LoadKeyring(dir, false)
			if !errors.Is(err, seal.ErrNoIdentity) {
				t.Fatalf("LoadKeyring = %v, want ErrNoIdentity", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Join(dir, "age")) {
				t.Errorf("error %q should name the directory and say %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "age", "current")); err == nil {
				t.Error("production mode created a key")
			}
		})
	}
	if _, err := seal.LoadKeyring("", true); err == nil {
		t.Error("LoadKeyring with an empty directory name succeeded")
	}
}

func TestLoadKeyringCreatesOnceAndReloads(t *testing.T) {
	dir := t.TempDir()
	kr, err := seal.LoadKeyring(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	id := kr.Current()
	if len(id) != 16 || !slices.Equal(kr.IDs(), []string{id}) || kr.PostQuantum(id) {
		t.Fatalf("new keyring: current %q, ids %v, pq %v", id, kr.IDs(), kr.PostQuantum(id))
	}
	for _, c := range []struct {
		path string
		perm os.FileMode
	}{{"age", 0o700}, {"age/" + id + ".key", 0o600}, {"age/current", 0o600}} {
		st, err := os.Stat(filepath.Join(dir, c.path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.perm {
			t.Errorf("%s mode %o, want %o", c.path, st.Mode().Perm(), c.perm)
		}
	}
	for _, create := range []bool{true, false} {
		again, err := seal.LoadKeyring(dir, create)
		if err != nil || again.Current() != id || len(again.IDs()) != 1 {
			t.Fatalf("reload (create=%v): %v, current %q, ids %v", create, err, again.Current(), again.IDs())
		}
	}
	// The key id is stable: the same identity, wrapped and unwrapped by
	// two loads of the directory.
	dek := bytes.Repeat([]byte{7}, 32)
	w, err := kr.Wrap("shp_1", dek)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := seal.LoadKeyring(dir, false)
	got, err := other.Unwrap(w)
	if err != nil || !bytes.Equal(got, dek) || w.KeyID != id {
		t.Fatalf("Unwrap = %x, %v (key id %s)", got, err, w.KeyID)
	}
}

func TestInitKeyringRaceAgreesOnOneIdentity(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	ids := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kr, c, err := seal.InitKeyring(dir, false)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], created[i] = kr.Current(), c
		})
	}
	wg.Wait()
	var nCreated int
	for i := range n {
		if ids[i] != ids[0] {
			t.Fatalf("initialisers disagree: %v", ids)
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Errorf("%d initialisers report creating the identity, want 1", nCreated)
	}
	kr, err := seal.LoadKeyring(dir, false)
	if err != nil || len(kr.IDs()) != 1 {
		t.Fatalf("after the race: %v, ids %v (losers' identities must be removed)", err, kr.IDs())
	}
}

func TestKeyringRejectsBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		apply func(t *testing.T, ageDir, id string)
		want  string
	}{
		{name: "identity readable by others", apply: func(t *testing.T, ageDir, id string) {
			if err := os.Chmod(filepath.Join(ageDir, id+".key"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: "chmod 600"},
		{name: "identity under another key id's name", apply: func(t *testing.T, ageDir, id string) {
			if err := os.Rename(filepath.Join(ageDir, id+".key"), filepath.Join(ageDir, "0000000000000000.key")); err != nil {
				t.Fatal(err)
			}
		}, want: "not 0000000000000000"},
		{name: "garbage identity", apply: func(t *testing.T, ageDir, _ string) {
			if err := os.WriteFile(filepath.Join(ageDir, "1111111111111111.key"), []byte("AGE-SECRET-KEY-1NOPE\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "1111111111111111.key"},
		{name: "current names a missing identity", apply: func(t *testing.T, ageDir, _ string) {
			if err := os.WriteFile(filepath.Join(ageDir, "current"), []byte("2222222222222222\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "2222222222222222"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			kr, err := seal.LoadKeyring(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			tc.apply(t, kr.Dir(), kr.Current())
			_, err = seal.LoadKeyring(dir, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadKeyring = %v, want an error mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
}

func TestRotateAndRetire(t *testing.T) {
	for _, pq := range []bool{false, true} {
		name := map[bool]string{false: "to X25519", true: "to hybrid post-quantum"}[pq]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			kr, err := seal.LoadKeyring(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			old := kr.Current()
			dek := bytes.Repeat([]byte{9}, 32)
			wOld, err := kr.Wrap("shp_1", dek)
			if err != nil {
				t.Fatal(err)
			}

			// Another process sharing the directory.
			peer, err := seal.LoadKeyring(dir, false)
			if err != nil {
				t.Fatal(err)
			}

			next, err := kr.Rotate(pq)
			if err != nil {
				t.Fatal(err)
			}
			if next == old || kr.Current() != next || kr.PostQuantum(next) != pq || len(kr.IDs()) != 2 {
				t.Fatalf("after Rotate: current %s (old %s), pq %v, ids %v", kr.Current(), old, kr.PostQuantum(next), kr.IDs())
			}
			wNew, err := kr.Wrap("shp_1", dek)
			if err != nil || wNew.KeyID != next {
				t.Fatalf("Wrap after Rotate: %v, key id %s, want %s", err, wNew.KeyID, next)
			}
			// The peer notices the rotation on its next wrap, and unwraps
			// keys wrapped to the new identity.
			if w, err := peer.Wrap("shp_2", dek); err != nil || w.KeyID != next {
				t.Errorf("peer wraps to %s (%v), want the rotated-in %s", w.KeyID, err, next)
			}
			if got, err := peer.Unwrap(wNew); err != nil || !bytes.Equal(got, dek) {
				t.Errorf("peer Unwrap of a rotated key: %v", err)
			}
			for _, w := range []broker.WrappedKey{wOld, wNew} {
				if got, err := kr.Unwrap(w); err != nil || !bytes.Equal(got, dek) {
					t.Errorf("Unwrap(%s) = %v", w.KeyID, err)
				}
			}

			counts := map[string]int64{old: 1, next: 1}
			counter := counterFunc(func() map[string]int64 { return counts })
			refusals := []struct {
				name, id, code string
			}{
				{name: "current", id: next, code: broker.EConflict},
				{name: "still in use", id: old, code: broker.EConflict},
				{name: "unknown", id: "ffffffffffffffff", code: broker.ENotFound},
			}
			for _, r := range refusals {
				if err := kr.Retire(ctx, r.id, counter); broker.ErrorCode(err) != r.code {
					t.Errorf("Retire %s = %v, want %s", r.name, err, r.code)
				}
			}
			delete(counts, old)
			if err := kr.Retire(ctx, old, counter); err != nil {
				t.Fatalf("Retire unused: %v", err)
			}
			if slices.Contains(kr.IDs(), old) {
				t.Error("retired identity still held")
			}
			if _, err := os.Stat(filepath.Join(kr.Dir(), old+".key")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("retired identity file still on disk: %v", err)
			}
			fresh, err := seal.LoadKeyring(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fresh.Unwrap(wOld); !errors.Is(err, seal.ErrUnknownIdentity) {
				t.Errorf("Unwrap with a retired identity = %v, want ErrUnknownIdentity", err)
			}
			if got, err := fresh.Unwrap(wNew); err != nil || !bytes.Equal(got, dek) {
				t.Errorf("Unwrap with only the new identity: %v", err)
			}
		})
	}
}

type counterFunc func() map[string]int64

func (f counterFunc) CountSubjectKeys(context.Context) (map[string]int64, error) { return f(), nil }

func TestUnwrapChecksTheSubject(t *testing.T) {
	kr := newKeyring(t)
	dek := bytes.Repeat([]byte{1}, 32)
	w, err := kr.Wrap("shp_1", dek)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		w    broker.WrappedKey
		ok   bool
	}{
		{name: "own subject", w: w, ok: true},
		{name: "another subject", w: broker.WrappedKey{Subject: "shp_2", KeyID: w.KeyID, Wrapped: w.Wrapped}},
		{name: "subject prefix", w: broker.WrappedKey{Subject: "shp_", KeyID: w.KeyID, Wrapped: w.Wrapped}},
		{name: "truncated", w: broker.WrappedKey{Subject: "shp_1", KeyID: w.KeyID, Wrapped: w.Wrapped[:len(w.Wrapped)-1]}},
		{name: "unknown key id", w: broker.WrappedKey{Subject: "shp_1", KeyID: "0123456789abcdef", Wrapped: w.Wrapped}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kr.Unwrap(tc.w)
			if tc.ok != (err == nil) || (tc.ok && !bytes.Equal(got, dek)) {
				t.Fatalf("Unwrap = %x, %v; want ok=%v", got, err, tc.ok)
			}
		})
	}
	for _, bad := range [][]byte{nil, make([]byte, 31), make([]byte, 33)} {
		if _, err := kr.Wrap("shp_1", bad); err == nil {
			t.Errorf("Wrap of a %d-byte key succeeded", len(bad))
		}
	}
}
