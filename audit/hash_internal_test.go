package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFastHashersAgreeWithRFC6962(t *testing.T) {
	lh := NewLeafHasher()
	for n := 0; n < 300; n += 7 {
		leaf := bytes.Repeat([]byte{byte(n)}, n)
		if got, want := lh.Sum(nil, leaf), LeafHash(leaf); !bytes.Equal(got, want) {
			t.Fatalf("leaf hash of %d bytes differs", n)
		}
		l := sha256.Sum256(leaf)
		r := sha256.Sum256(append(leaf, 1))
		if got, want := hashChildren(l[:], r[:]), NodeHash(l[:], r[:]); !bytes.Equal(got, want) {
			t.Fatalf("node hash differs")
		}
	}
	// Odd-length inputs take the library path.
	if got, want := hashChildren([]byte("a"), []byte("bc")), NodeHash([]byte("a"), []byte("bc")); !bytes.Equal(got, want) {
		t.Fatal("node hash of short inputs differs")
	}
}

func TestDaysFromCivil(t *testing.T) {
	for y := 0; y <= 9999; y += 7 {
		for m := 1; m <= 12; m++ {
			for _, d := range []int{1, 15, daysIn(time.Month(m), y)} {
				want := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400
				if got := daysFromCivil(y, m, d); got != want {
					t.Fatalf("%04d-%02d-%02d: %d, want %d", y, m, d, got, want)
				}
			}
		}
	}
}

func TestNeedCareMatchesTable(t *testing.T) {
	// needCare's first flagged byte must be the first byte that is not
	// plain, whatever follows it (borrows may flag bytes after it).
	for c := 0; c < 256; c++ {
		for _, next := range []byte{0x00, 0x01, '"', '#', 'a', 0xff} {
			for pos := 0; pos < 8; pos++ {
				w := []byte("abcdefgh")
				w[pos] = byte(c)
				if pos < 7 {
					w[pos+1] = next
				}
				want := -1
				for i, b := range w {
					if b >= utf8.RuneSelf || !plain[b] {
						want = i
						break
					}
				}
				got := -1
				if m := needCare(binary.LittleEndian.Uint64(w)); m != 0 {
					got = bits.TrailingZeros64(m) >> 3
				}
				if got != want {
					t.Errorf("% x: first byte needing care at %d, needCare says %d", w, want, got)
				}
			}
		}
	}
}
