package seal_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sieve-broker/sieve/broker/seal"
)

// The figures of `make bench`: sealing a record under a cached data key
// (BenchmarkSealOpen300, target ≤ 2 µs), beside the same-run baselines of
// age per record (what the envelope avoids) and the bare AEAD (the floor),
// and the cache-miss cost (BenchmarkUnwrap).

const recordSize = 300

func reportNsPerOp(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/op")
}

func BenchmarkSealOpen300(b *testing.B) {
	s := newSealer(b, newKeyring(b), seal.NewMemStore(), seal.Options{})
	pt := bytes.Repeat([]byte("a"), recordSize)
	mustSeal(b, s, "shp_bench", addr, pt) // the key is cached from here on
	b.ReportAllocs()
	for b.Loop() {
		sealed, err := s.Seal(ctx, "shp_bench", addr, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Open(ctx, "shp_bench", addr, sealed); err != nil {
			b.Fatal(err)
		}
	}
	reportNsPerOp(b)
}

func BenchmarkSealOpen300Parallel(b *testing.B) {
	s := newSealer(b, newKeyring(b), seal.NewMemStore(), seal.Options{})
	pt := bytes.Repeat([]byte("a"), recordSize)
	mustSeal(b, s, "shp_bench", addr, pt)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sealed, err := s.Seal(ctx, "shp_bench", addr, pt)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := s.Open(ctx, "shp_bench", addr, sealed); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportNsPerOp(b)
}

// BenchmarkXChaCha300 is the floor: the bare AEAD with a random nonce,
// no key lookup and no associated-data encoding.
func BenchmarkXChaCha300(b *testing.B) {
	key := make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		b.Fatal(err)
	}
	pt := bytes.Repeat([]byte("a"), recordSize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	buf := make([]byte, 0, recordSize+chacha20poly1305.Overhead)
	out := make([]byte, 0, recordSize)
	b.ReportAllocs()
	for b.Loop() {
		rand.Read(nonce)
		ct := aead.Seal(buf[:0], nonce, pt, nil)
		if _, err := aead.Open(out[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportNsPerOp(b)
}

// BenchmarkAgePerRecord300 is the design the envelope replaces: age X25519
// encryption and decryption of each record.
func BenchmarkAgePerRecord300(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	pt := bytes.Repeat([]byte("a"), recordSize)
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, id.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		w.Write(pt)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		r, err := age.Decrypt(&buf, id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAll(r); err != nil {
			b.Fatal(err)
		}
	}
	reportNsPerOp(b)
}

// BenchmarkUnwrap is the cache-miss cost: the age unwrap of a data key
// (X25519, then the hybrid post-quantum identity).
func BenchmarkUnwrap(b *testing.B) {
	for _, pq := range []bool{false, true} {
		b.Run(map[bool]string{false: "X25519", true: "hybrid"}[pq], func(b *testing.B) {
			kr := newKeyring(b)
			if pq {
				if _, err := kr.Rotate(true); err != nil {
					b.Fatal(err)
				}
			}
			w, err := kr.Wrap("shp_bench", make([]byte, 32))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(w.Wrapped)), "wrapped-bytes")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.Unwrap(w); err != nil {
					b.Fatal(err)
				}
			}
			reportNsPerOp(b)
		})
	}
}
