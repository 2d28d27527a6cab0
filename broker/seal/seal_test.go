package seal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/seal"
)

var ctx = context.Background()

func newKeyring(t testing.TB) *seal.Keyring {
	t.Helper()
	kr, err := seal.LoadKeyring(t.TempDir(), true)
	if err != nil {
		t.Fatalf("LoadKeyring: %v", err)
	}
	return kr
}

func newSealer(t testing.TB, kr *seal.Keyring, store broker.SubjectKeyStore, opts seal.Options) *seal.Sealer {
	t.Helper()
	s, err := seal.NewSealer(kr, store, opts)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func mustSeal(t testing.TB, s *seal.Sealer, subject string, b broker.Binding, pt []byte) []byte {
	t.Helper()
	sealed, err := s.Seal(ctx, subject, b, pt)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return sealed
}

func mustOpen(t testing.TB, s *seal.Sealer, subject string, b broker.Binding, sealed, want []byte) {
	t.Helper()
	got, err := s.Open(ctx, subject, b, sealed)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Open = %q, want %q", got, want)
	}
}

var addr = broker.Binding{Table: "orders", Column: "sealed_delivery", RowID: "ord_1"}

func TestSealOpenRoundTrip(t *testing.T) {
	s := newSealer(t, newKeyring(t), seal.NewMemStore(), seal.Options{})
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{name: "empty", plaintext: []byte{}},
		{name: "one byte", plaintext: []byte{0}},
		{name: "address", plaintext: []byte(`{"address":"12 MG Road","postal_code":"560001"}`)},
		{name: "64 KiB", plaintext: bytes.Repeat([]byte("x"), 64<<10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sealed := mustSeal(t, s, "shp_1", addr, tc.plaintext)
			if len(sealed) != len(tc.plaintext)+seal.Overhead {
				t.Errorf("sealed %d bytes into %d, want overhead %d", len(tc.plaintext), len(sealed), seal.Overhead)
			}
			if sealed[0] != 1 {
				t.Errorf("version byte = %d, want 1", sealed[0])
			}
			if len(tc.plaintext) >= 8 && bytes.Contains(sealed, tc.plaintext[:8]) {
				t.Error("sealed record contains the plaintext")
			}
			mustOpen(t, s, "shp_1", addr, sealed, tc.plaintext)
		})
	}
	t.Run("two seals differ", func(t *testing.T) {
		a, b := mustSeal(t, s, "shp_1", addr, []byte("same")), mustSeal(t, s, "shp_1", addr, []byte("same"))
		if bytes.Equal(a, b) {
			t.Fatal("sealing twice gave the same bytes: nonce reuse")
		}
	})
}

func TestOpenFailsWhenTheBindingChanges(t *testing.T) {
	store := seal.NewMemStore()
	s := newSealer(t, newKeyring(t), store, seal.Options{})
	pt := []byte("9876543210")
	sealed := mustSeal(t, s, "shp_1", addr, pt)
	mustSeal(t, s, "shp_2", addr, pt) // so shp_2 has a key: a moved record must not open under it

	tests := []struct {
		name    string
		subject string
		b       broker.Binding
	}{
		{name: "other table", subject: "shp_1", b: broker.Binding{Table: "subjects", Column: addr.Column, RowID: addr.RowID}},
		{name: "other column", subject: "shp_1", b: broker.Binding{Table: addr.Table, Column: "sealed_identity", RowID: addr.RowID}},
		{name: "other row", subject: "shp_1", b: broker.Binding{Table: addr.Table, Column: addr.Column, RowID: "ord_2"}},
		{name: "other subject", subject: "shp_2", b: addr},
		// Plain concatenation would make these equal to addr.
		{name: "shifted table/column boundary", subject: "shp_1", b: broker.Binding{Table: "orderss", Column: "ealed_delivery", RowID: addr.RowID}},
		{name: "shifted column/row boundary", subject: "shp_1", b: broker.Binding{Table: addr.Table, Column: "sealed_deliveryo", RowID: "rd_1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Open(ctx, tc.subject, tc.b, sealed)
			if !errors.Is(err, seal.ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("unchanged binding opens", func(t *testing.T) { mustOpen(t, s, "shp_1", addr, sealed, pt) })
}

func TestOpenFailsWhenTampered(t *testing.T) {
	s := newSealer(t, newKeyring(t), seal.NewMemStore(), seal.Options{})
	pt := []byte("Asha Rao, +91 98450 00000")
	sealed := mustSeal(t, s, "shp_1", addr, pt)
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i] ^= 0x01; return b }
	}
	tests := []struct {
		name   string
		change func([]byte) []byte
	}{
		{name: "version byte", change: flip(0)},
		{name: "nonce first byte", change: flip(1)},
		{name: "nonce last byte", change: flip(24)},
		{name: "ciphertext", change: flip(30)},
		{name: "tag", change: flip(len(sealed) - 1)},
		{name: "truncated tag", change: func(b []byte) []byte { return b[:len(b)-1] }},
		{name: "appended byte", change: func(b []byte) []byte { return append(b, 0) }},
		{name: "header only", change: func(b []byte) []byte { return b[:25] }},
		{name: "empty", change: func([]byte) []byte { return nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.change(bytes.Clone(sealed))
			got, err := s.Open(ctx, "shp_1", addr, bad)
			if !errors.Is(err, seal.ErrCorrupt) || got != nil {
				t.Fatalf("Open = %q, %v; want ErrCorrupt", got, err)
			}
			if broker.ErrorCode(err) != broker.EInternal {
				t.Errorf("code = %q, want internal", broker.ErrorCode(err))
			}
		})
	}
	t.Run("original still opens", func(t *testing.T) { mustOpen(t, s, "shp_1", addr, sealed, pt) })
}

func TestSealRejectsInvalidInput(t *testing.T) {
	s := newSealer(t, newKeyring(t), seal.NewMemStore(), seal.Options{})
	tests := []struct {
		name    string
		subject string
		b       broker.Binding
	}{
		{name: "empty subject", subject: "", b: addr},
		{name: "reserved system subject", subject: seal.SystemSubject, b: addr},
		{name: "reserved prefix", subject: "system:other", b: addr},
		{name: "overlong subject", subject: strings.Repeat("s", 2000), b: addr},
		{name: "no table", subject: "shp_1", b: broker.Binding{Column: "c", RowID: "r"}},
		{name: "no column", subject: "shp_1", b: broker.Binding{Table: "t", RowID: "r"}},
		{name: "no row", subject: "shp_1", b: broker.Binding{Table: "t", Column: "c"}},
		{name: "overlong row", subject: "shp_1", b: broker.Binding{Table: "t", Column: "c", RowID: strings.Repeat("r", 5000)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Seal(ctx, tc.subject, tc.b, []byte("x")); broker.ErrorCode(err) != broker.EInvalid {
				t.Errorf("Seal error = %v, want invalid", err)
			}
			if _, err := s.Open(ctx, tc.subject, tc.b, make([]byte, 64)); broker.ErrorCode(err) != broker.EInvalid {
				t.Errorf("Open error = %v, want invalid", err)
			}
		})
	}
	if err := s.Shred(ctx, seal.SystemSubject); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("Shred of the system subject = %v, want invalid", err)
	}
}

func TestOptions(t *testing.T) {
	kr, store := newKeyring(t), seal.NewMemStore()
	tests := []struct {
		name    string
		opts    seal.Options
		wantErr []string // every problem is reported at once
	}{
		{name: "zero takes defaults", opts: seal.Options{}},
		{name: "explicit", opts: seal.Options{CacheSize: 5, CacheTTL: 1}},
		{name: "negative size and ttl", opts: seal.Options{CacheSize: -1, CacheTTL: -1}, wantErr: []string{"CacheSize", "CacheTTL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := seal.NewSealer(kr, store, tc.opts)
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not mention %s", err, w)
				}
			}
			if len(tc.wantErr) == 0 && (err != nil || s == nil) {
				t.Errorf("NewSealer = %v, %v", s, err)
			}
		})
	}
	if _, err := seal.NewSealer(nil, store, seal.Options{}); err == nil {
		t.Error("NewSealer without a keyring succeeded")
	}
	opts := seal.Options{}
	opts.SetDefaults()
	if opts.CacheSize != seal.DefaultCacheSize || opts.CacheTTL != seal.DefaultCacheTTL {
		t.Errorf("SetDefaults = %+v", opts)
	}
}

func TestVault(t *testing.T) {
	store := seal.NewMemStore()
	s := newSealer(t, newKeyring(t), store, seal.Options{})
	secret := []byte("partner client secret")
	sealed, err := s.SealSecret(ctx, "partner:p1", secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.OpenSecret(ctx, "partner:p1", sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("OpenSecret = %q, %v", got, err)
	}
	if _, err := s.OpenSecret(ctx, "partner:p2", sealed); !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("secret opened under another name: %v", err)
	}
	if _, err := s.SealSecret(ctx, "", secret); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("empty name: %v", err)
	}
	// The vault key is the system subject's, apart from every shopper's:
	// a shopper record cannot be opened as a secret.
	rec := mustSeal(t, s, "shp_1", broker.Binding{Table: "vault", Column: "secret", RowID: "partner:p1"}, secret)
	if _, err := s.OpenSecret(ctx, "partner:p1", rec); !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("a shopper record opened as a vault secret: %v", err)
	}
	if _, err := store.GetSubjectKey(ctx, seal.SystemSubject); err != nil {
		t.Errorf("no system key stored: %v", err)
	}
}

func TestShredInMemory(t *testing.T) {
	store := seal.NewMemStore()
	s := newSealer(t, newKeyring(t), store, seal.Options{})
	sealed := mustSeal(t, s, "shp_1", addr, []byte("x"))
	other := mustSeal(t, s, "shp_2", addr, []byte("y"))
	if err := s.Shred(ctx, "shp_1"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Open(ctx, "shp_1", addr, sealed)
	if !errors.Is(err, seal.ErrErased) || broker.ErrorCode(err) != broker.ENotFound || broker.ErrorMessage(err) != "data erased" {
		t.Fatalf("Open after Shred = %v, want ENotFound \"data erased\"", err)
	}
	mustOpen(t, s, "shp_2", addr, other, []byte("y"))
	if err := s.Shred(ctx, "shp_1"); err != nil {
		t.Fatalf("second Shred: %v", err)
	}
}

func TestCachedKeyAvoidsTheStore(t *testing.T) {
	store := seal.NewMemStore()
	s := newSealer(t, newKeyring(t), store, seal.Options{})
	sealed := mustSeal(t, s, "shp_1", addr, []byte("x"))
	before := store.Gets.Load()
	for range 10 {
		mustOpen(t, s, "shp_1", addr, sealed, []byte("x"))
		mustSeal(t, s, "shp_1", addr, []byte("x"))
	}
	if n := store.Gets.Load() - before; n != 0 {
		t.Fatalf("%d store reads with a cached key, want 0", n)
	}
}

func TestCacheSizeIsBounded(t *testing.T) {
	store := seal.NewMemStore()
	kr := newKeyring(t)
	s := newSealer(t, kr, store, seal.Options{CacheSize: 3})
	records := map[string][]byte{}
	for i := range 10 {
		subject := fmt.Sprintf("shp_%d", i)
		records[subject] = mustSeal(t, s, subject, addr, []byte(subject))
		if n := s.CachedKeys(); n > 3 {
			t.Fatalf("%d keys cached, bound is 3", n)
		}
	}
	if n := s.CachedKeys(); n != 3 {
		t.Fatalf("%d keys cached, want 3", n)
	}
	// Evicted keys come back from the store.
	for subject, sealed := range records {
		mustOpen(t, s, subject, addr, sealed, []byte(subject))
	}
}

func TestConcurrentFirstUseInMemory(t *testing.T) {
	store := seal.NewMemStore()
	kr := newKeyring(t)
	s := newSealer(t, kr, store, seal.Options{})
	const n = 32
	sealed := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if sealed[i], err = s.Seal(ctx, "shp_new", addr, []byte{byte(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := store.Puts.Load(); p != 1 {
		t.Errorf("%d keys created for one subject in one process, want 1", p)
	}
	cold := newSealer(t, kr, store, seal.Options{})
	for i := range n {
		mustOpen(t, cold, "shp_new", addr, sealed[i], []byte{byte(i)})
	}
}

func TestWrappedKeyMovedToAnotherSubjectDoesNotUnwrap(t *testing.T) {
	store := seal.NewMemStore()
	kr := newKeyring(t)
	s := newSealer(t, kr, store, seal.Options{})
	mustSeal(t, s, "shp_victim", addr, []byte("x"))
	victim, _ := store.GetSubjectKey(ctx, "shp_victim")
	// Someone with write access to the database copies the victim's
	// wrapped key into another subject's row before its first use.
	store.Set(broker.WrappedKey{Subject: "shp_other", KeyID: victim.KeyID, Wrapped: victim.Wrapped})
	if _, err := s.Seal(ctx, "shp_other", addr, []byte("y")); err == nil {
		t.Fatal("sealed under another subject's key")
	}
}
