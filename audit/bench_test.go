package audit_test

import (
	"testing"

	"github.com/sieve-broker/sieve/audit"
)

// benchLeaf is a leaf of the size the broker writes (about 420 bytes).
func benchLeaf(b *testing.B) []byte {
	b.Helper()
	e := sampleEntry(123456)
	e.Subject = "sub_0000000000000000004242"
	e.Released = []string{"delivery.address", "delivery.postal_code", "delivery.slot", "items", "total"}
	e.Withheld = []string{"chat", "customer.phone", "customer.profile_name"}
	leaf, err := e.Canonical()
	if err != nil {
		b.Fatal(err)
	}
	return leaf
}

func BenchmarkScanLeaf(b *testing.B) {
	leaf := benchLeaf(b)
	var v audit.LeafView
	b.SetBytes(int64(len(leaf)))
	for b.Loop() {
		if err := audit.ScanLeaf(leaf, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEntry(b *testing.B) {
	leaf := benchLeaf(b)
	b.SetBytes(int64(len(leaf)))
	for b.Loop() {
		if _, err := audit.ParseEntry(leaf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonical(b *testing.B) {
	e := sampleEntry(123456)
	for b.Loop() {
		if _, err := e.Canonical(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafHash(b *testing.B) {
	leaf := benchLeaf(b)
	lh := audit.NewLeafHasher()
	buf := make([]byte, 0, audit.HashSize)
	b.SetBytes(int64(len(leaf)))
	for b.Loop() {
		buf = lh.Sum(buf[:0], leaf)
	}
}

func BenchmarkTreeAppend(b *testing.B) {
	h := audit.LeafHash([]byte("leaf"))
	t := audit.NewTree()
	for b.Loop() {
		if err := t.Append(h, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRangeAppend(b *testing.B) {
	h := audit.LeafHash([]byte("leaf"))
	r := audit.NewRange(0)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Append(h, nil); err != nil {
			b.Fatal(err)
		}
	}
}
