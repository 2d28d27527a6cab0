package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/sieve-broker/sieve/audit"
)

// memLog is an in-memory log: the reference the store and proofs are
// checked against. It computes every node from the leaf hashes.
type memLog struct {
	leaves [][]byte
	hashes [][]byte
}

func (m *memLog) add(leaf []byte) {
	m.leaves = append(m.leaves, leaf)
	m.hashes = append(m.hashes, audit.LeafHash(leaf))
}

// node returns the hash of the perfect subtree id.
func (m *memLog) node(id compact.NodeID) []byte {
	if id.Level == 0 {
		return m.hashes[id.Index]
	}
	l := m.node(compact.NewNodeID(id.Level-1, id.Index*2))
	r := m.node(compact.NewNodeID(id.Level-1, id.Index*2+1))
	return audit.NodeHash(l, r)
}

func (m *memLog) ReadNodes(_ context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		if _, end := id.Coverage(); end > uint64(len(m.hashes)) {
			return nil, fmt.Errorf("node %+v beyond %d leaves", id, len(m.hashes))
		}
		out[i] = m.node(id)
	}
	return out, nil
}

// root returns the root of the first size leaves.
func (m *memLog) root(size uint64) []byte {
	t := audit.NewTree()
	for _, h := range m.hashes[:size] {
		if err := t.Append(h, nil); err != nil {
			panic(err)
		}
	}
	return t.Root()
}

// sampleEntry returns a synthetic entry (no personal data: pseudonyms and
// field names only).
func sampleEntry(i uint64) audit.Entry {
	outcomes := []string{audit.OutcomeReleased, audit.OutcomePartial, audit.OutcomeDenied}
	return audit.Entry{
		Index:          i,
		Time:           time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * 1500 * time.Microsecond),
		DecisionID:     fmt.Sprintf("dec_%08d", i),
		Actor:          fmt.Sprintf("retailer:cli_%d", i%3),
		Action:         "release",
		Purpose:        "order_fulfilment",
		Subject:        fmt.Sprintf("sub_%06d", i%97),
		Resource:       fmt.Sprintf("order:ord_%06d", i),
		Released:       []string{"items", "delivery.postal_code"},
		Withheld:       []string{"customer.phone"},
		Outcome:        outcomes[i%3],
		PolicyRevision: "rev_test",
	}
}

// sampleLog returns a memLog of n sample entries.
func sampleLog(t testing.TB, n int) *memLog {
	t.Helper()
	m := &memLog{}
	for i := 0; i < n; i++ {
		leaf, err := sampleEntry(uint64(i)).Canonical()
		if err != nil {
			t.Fatal(err)
		}
		m.add(leaf)
	}
	return m
}

// testKey is a fixed signing key so test failures are reproducible.
func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return ed25519.NewKeyFromSeed(s)
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const testOrigin = "audit.test.example:8080"

// signed returns the signed checkpoint note of m at size with key k.
func signed(t testing.TB, k ed25519.PrivateKey, m *memLog, size uint64) []byte {
	t.Helper()
	n, err := audit.SignCheckpoint(k, testOrigin, size, m.root(size))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
