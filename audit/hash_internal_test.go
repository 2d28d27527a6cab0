package audit

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"
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

func TestSimpleMatchesTable(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, pos := range []int{0, 3, 8, 13, 16} {
			b := []byte("abcdefghijklmnopq")
			b[pos] = byte(c)
			want := c >= 0x20 && c < 0x80 && c != '\\' && c != '<' && c != '>' && c != '&'
			if got := simple(b); got != want {
				t.Errorf("byte %#x at %d: simple = %v", c, pos, got)
			}
		}
	}
}
