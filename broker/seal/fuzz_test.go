package seal_test

import (
	"bytes"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/seal"
)

// FuzzOpen feeds Open arbitrary stored bytes: it must never panic, and
// nothing but the record sealed for this subject and binding may open.
func FuzzOpen(f *testing.F) {
	s := newSealer(f, newKeyring(f), seal.NewMemStore(), seal.Options{})
	pt := []byte("12 MG Road, Bengaluru 560001")
	sealed := mustSeal(f, s, "shp_1", addr, pt)
	f.Add(sealed)
	f.Add(sealed[:seal.Overhead])
	f.Add([]byte{1})
	f.Add(append([]byte{2}, sealed[1:]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := s.Open(ctx, "shp_1", addr, data)
		if err == nil && (!bytes.Equal(data, sealed) || !bytes.Equal(got, pt)) {
			t.Fatalf("Open accepted %x", data)
		}
	})
}

// FuzzUnwrap feeds Unwrap arbitrary wrapped keys, as a damaged or hostile
// subject_keys row would.
func FuzzUnwrap(f *testing.F) {
	kr := newKeyring(f)
	dek := bytes.Repeat([]byte{5}, 32)
	w, err := kr.Wrap("shp_1", dek)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(w.Wrapped, "shp_1")
	f.Add(w.Wrapped[:len(w.Wrapped)/2], "shp_1")
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\n"), "shp_1")
	f.Fuzz(func(t *testing.T, wrapped []byte, subject string) {
		got, err := kr.Unwrap(broker.WrappedKey{Subject: subject, KeyID: w.KeyID, Wrapped: wrapped})
		if err == nil && (subject != "shp_1" || !bytes.Equal(got, dek)) {
			t.Fatalf("Unwrap accepted %x for %q", wrapped, subject)
		}
	})
}
