package audit_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/compact"

	"github.com/sieve-broker/sieve/audit"
)

type vectors struct {
	Leaves     []string `json:"leaves"`
	EmptyRoot  string   `json:"empty_root"`
	LeafHashes []string `json:"leaf_hashes"`
	Roots      []string `json:"roots"`
	Inclusion  []struct {
		Index uint64   `json:"index"`
		Size  uint64   `json:"size"`
		Proof []string `json:"proof"`
	} `json:"inclusion"`
	Consistency []struct {
		Size1 uint64   `json:"size1"`
		Size2 uint64   `json:"size2"`
		Proof []string `json:"proof"`
	} `json:"consistency"`
}

func loadVectors(t *testing.T) (vectors, *memLog) {
	t.Helper()
	b, err := os.ReadFile("testdata/rfc6962.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	m := &memLog{}
	for _, l := range v.Leaves {
		m.add(mustHex(t, l))
	}
	return v, m
}

func hexes(t *testing.T, ss []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = mustHex(t, s)
	}
	return out
}

func TestKnownAnswerHashesAndRoots(t *testing.T) {
	v, m := loadVectors(t)
	if got := hex.EncodeToString(audit.EmptyRoot()); got != v.EmptyRoot {
		t.Errorf("empty root = %s, want %s", got, v.EmptyRoot)
	}
	if got := hex.EncodeToString(audit.NewTree().Root()); got != v.EmptyRoot {
		t.Errorf("empty tree root = %s", got)
	}
	for i, want := range v.LeafHashes {
		if got := hex.EncodeToString(m.hashes[i]); got != want {
			t.Errorf("leaf hash %d = %s, want %s", i, got, want)
		}
	}
	tree := audit.NewTree()
	for i, h := range m.hashes {
		if err := tree.Append(h, nil); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(tree.Root()); got != v.Roots[i] {
			t.Errorf("root of size %d = %s, want %s", i+1, got, v.Roots[i])
		}
	}
}

func TestKnownAnswerInclusion(t *testing.T) {
	v, m := loadVectors(t)
	for _, tc := range v.Inclusion {
		t.Run(fmt.Sprintf("index=%d/size=%d", tc.Index, tc.Size), func(t *testing.T) {
			want := hexes(t, tc.Proof)
			got, err := audit.BuildInclusion(context.Background(), m, tc.Index, tc.Size)
			if err != nil {
				t.Fatal(err)
			}
			if !equalHashes(got, want) {
				t.Fatalf("proof = %x, want %x", got, want)
			}
			root := mustHex(t, v.Roots[tc.Size-1])
			if err := audit.VerifyInclusion(m.hashes[tc.Index], tc.Index, tc.Size, want, root); err != nil {
				t.Fatalf("vector does not verify: %v", err)
			}
			for _, c := range corruptInclusion(tc.Index, tc.Size, want, root, m.hashes[tc.Index]) {
				if err := audit.VerifyInclusion(c.leaf, c.index, c.size, c.proof, c.root); err == nil {
					t.Errorf("%s: corrupted proof verified", c.name)
				} else if !errors.Is(err, audit.ErrInvalidProof) && !errors.Is(err, audit.ErrRootMismatch) {
					t.Errorf("%s: error %v wraps no sentinel", c.name, err)
				}
			}
		})
	}
}

func TestKnownAnswerConsistency(t *testing.T) {
	v, m := loadVectors(t)
	for _, tc := range v.Consistency {
		t.Run(fmt.Sprintf("%d-%d", tc.Size1, tc.Size2), func(t *testing.T) {
			want := hexes(t, tc.Proof)
			got, err := audit.BuildConsistency(context.Background(), m, tc.Size1, tc.Size2)
			if err != nil {
				t.Fatal(err)
			}
			if !equalHashes(got, want) {
				t.Fatalf("proof = %x, want %x", got, want)
			}
			r1, r2 := mustHex(t, v.Roots[tc.Size1-1]), mustHex(t, v.Roots[tc.Size2-1])
			if err := audit.VerifyConsistency(tc.Size1, tc.Size2, want, r1, r2); err != nil {
				t.Fatalf("vector does not verify: %v", err)
			}
			for _, c := range corruptConsistency(tc.Size1, tc.Size2, want, r1, r2) {
				if err := audit.VerifyConsistency(c.size1, c.size2, c.proof, c.root1, c.root2); err == nil {
					t.Errorf("%s: corrupted proof verified", c.name)
				}
			}
		})
	}
}

// TestProofsAllSizes builds and verifies every inclusion and consistency
// proof of trees up to 70 leaves (covering every shape of ephemeral node).
func TestProofsAllSizes(t *testing.T) {
	m := sampleLog(t, 70)
	ctx := context.Background()
	roots := make([][]byte, 71)
	for s := uint64(0); s <= 70; s++ {
		roots[s] = m.root(s)
	}
	for size := uint64(1); size <= 70; size++ {
		for i := uint64(0); i < size; i++ {
			p, err := audit.BuildInclusion(ctx, m, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyInclusion(m.hashes[i], i, size, p, roots[size]); err != nil {
				t.Fatalf("inclusion %d/%d: %v", i, size, err)
			}
		}
		for s1 := uint64(0); s1 <= size; s1++ {
			p, err := audit.BuildConsistency(ctx, m, s1, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyConsistency(s1, size, p, roots[s1], roots[size]); err != nil {
				t.Fatalf("consistency %d→%d: %v", s1, size, err)
			}
		}
	}
}

func TestBuildProofRejectsBadRanges(t *testing.T) {
	m := sampleLog(t, 4)
	ctx := context.Background()
	tests := []struct {
		name string
		err  error
	}{
		{"inclusion index == size", func() error { _, err := audit.BuildInclusion(ctx, m, 4, 4); return err }()},
		{"inclusion in empty tree", func() error { _, err := audit.BuildInclusion(ctx, m, 0, 0); return err }()},
		{"consistency from > to", func() error { _, err := audit.BuildConsistency(ctx, m, 3, 2); return err }()},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, audit.ErrOutOfRange) {
			t.Errorf("%s: err = %v, want ErrOutOfRange", tc.name, tc.err)
		}
	}
}

func TestMismatchErrorCarriesExpectedAndComputed(t *testing.T) {
	m := sampleLog(t, 8)
	p, err := audit.BuildInclusion(context.Background(), m, 3, 8)
	if err != nil {
		t.Fatal(err)
	}
	wrongRoot := m.root(7)
	err = audit.VerifyInclusion(m.hashes[3], 3, 8, p, wrongRoot)
	var me *audit.MismatchError
	if !errors.As(err, &me) || !errors.Is(err, audit.ErrRootMismatch) {
		t.Fatalf("err = %v, want a *MismatchError wrapping ErrRootMismatch", err)
	}
	if !bytes.Equal(me.Expected, wrongRoot) || !bytes.Equal(me.Computed, m.root(8)) {
		t.Errorf("expected/computed = %x/%x, want %x/%x", me.Expected, me.Computed, wrongRoot, m.root(8))
	}
}

func TestTreeResumeAndVisitor(t *testing.T) {
	m := sampleLog(t, 300)
	full := audit.NewTree()
	nodes := map[compact.NodeID][]byte{}
	for _, h := range m.hashes {
		if err := full.Append(h, func(id compact.NodeID, h []byte) { nodes[id] = h }); err != nil {
			t.Fatal(err)
		}
	}
	// Every perfect subtree is reported exactly with its hash.
	for level := uint(0); level <= 8; level++ {
		for idx := uint64(0); (idx+1)<<level <= 300; idx++ {
			id := compact.NewNodeID(level, idx)
			if got, want := nodes[id], m.node(id); !bytes.Equal(got, want) {
				t.Fatalf("node %+v = %x, want %x", id, got, want)
			}
		}
	}
	for _, cut := range []int{0, 1, 7, 128, 255, 256, 299} {
		part := audit.NewTree()
		for _, h := range m.hashes[:cut] {
			_ = part.Append(h, nil)
		}
		resumed, err := audit.ResumeTree(part.Size(), part.State())
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range m.hashes[cut:] {
			_ = resumed.Append(h, nil)
		}
		if !bytes.Equal(resumed.Root(), full.Root()) {
			t.Errorf("resumed at %d: root differs", cut)
		}
	}
	if _, err := audit.ResumeTree(5, [][]byte{m.hashes[0]}); err == nil {
		t.Error("ResumeTree accepted a state of the wrong shape")
	}
	if err := audit.NewTree().Append([]byte("short"), nil); err == nil {
		t.Error("Append accepted a short leaf hash")
	}
}

func equalHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

type inclusionProbe struct {
	name        string
	index, size uint64
	leaf, root  []byte
	proof       [][]byte
}

// corruptInclusion follows transparency-dev/merkle's corruptInclusionProof.
func corruptInclusion(index, size uint64, p [][]byte, root, leaf []byte) []inclusionProbe {
	other := bytes.Repeat([]byte{0xab}, 32)
	probes := []inclusionProbe{
		{"index-1", index - 1, size, leaf, root, p},
		{"index+1", index + 1, size, leaf, root, p},
		{"index^2", index ^ 2, size, leaf, root, p},
		{"size*2", index, size * 2, leaf, root, p},
		{"size/2", index, size / 2, leaf, root, p},
		{"wrong leaf", index, size, []byte("WrongLeaf"), root, p},
		{"other leaf", index, size, other, root, p},
		{"empty root", index, size, leaf, audit.EmptyRoot(), p},
		{"other root", index, size, leaf, other, p},
		{"trailing garbage", index, size, leaf, root, append(clone(p), []byte{})},
		{"trailing root", index, size, leaf, root, append(clone(p), root)},
		{"preceding garbage", index, size, leaf, root, append([][]byte{{}}, p...)},
		{"preceding root", index, size, leaf, root, append([][]byte{root}, p...)},
	}
	for i := range p {
		q := clone(p)
		q[i] = append([]byte(nil), q[i]...)
		q[i][0] ^= 8
		probes = append(probes, inclusionProbe{fmt.Sprintf("flipped bit in hash %d", i), index, size, leaf, root, q})
	}
	if len(p) > 0 {
		probes = append(probes, inclusionProbe{"removed hash", index, size, leaf, root, p[:len(p)-1]})
	}
	if len(p) > 1 {
		probes = append(probes, inclusionProbe{"inserted hash", index, size, leaf, root, append([][]byte{p[0], other}, p[1:]...)})
	}
	return probes
}

type consistencyProbe struct {
	name         string
	size1, size2 uint64
	root1, root2 []byte
	proof        [][]byte
}

func corruptConsistency(size1, size2 uint64, p [][]byte, r1, r2 []byte) []consistencyProbe {
	other := bytes.Repeat([]byte{0xab}, 32)
	probes := []consistencyProbe{
		{"size1-1", size1 - 1, size2, r1, r2, p},
		{"size1+1", size1 + 1, size2, r1, r2, p},
		{"size1^2", size1 ^ 2, size2, r1, r2, p},
		{"size2*2", size1, size2 * 2, r1, r2, p},
		{"size2/2", size1, size2 / 2, r1, r2, p},
		{"wrong root1", size1, size2, other, r2, p},
		{"wrong root2", size1, size2, r1, other, p},
		{"swapped roots", size1, size2, r2, r1, p},
		{"trailing garbage", size1, size2, r1, r2, append(clone(p), []byte{})},
		{"trailing root1", size1, size2, r1, r2, append(clone(p), r1)},
		{"preceding root2", size1, size2, r1, r2, append([][]byte{r2}, p...)},
	}
	if len(p) > 0 {
		probes = append(probes, consistencyProbe{"empty proof", size1, size2, r1, r2, [][]byte{}})
		probes = append(probes, consistencyProbe{"removed hash", size1, size2, r1, r2, p[:len(p)-1]})
	}
	for i := range p {
		q := clone(p)
		q[i] = append([]byte(nil), q[i]...)
		q[i][0] ^= 8
		probes = append(probes, consistencyProbe{fmt.Sprintf("flipped bit in hash %d", i), size1, size2, r1, r2, q})
	}
	// With equal sizes and equal roots an empty proof is right, and the
	// size perturbations of a 1→1 proof may stay valid: drop those probes.
	out := probes[:0]
	for _, pr := range probes {
		if pr.size1 == pr.size2 && bytes.Equal(pr.root1, pr.root2) && len(pr.proof) == 0 {
			continue
		}
		if pr.size1 == 0 && len(pr.proof) == 0 {
			continue
		}
		out = append(out, pr)
	}
	return out
}

func clone(p [][]byte) [][]byte { return append([][]byte(nil), p...) }

func TestRangeMerge(t *testing.T) {
	m := sampleLog(t, 600)
	for _, cut := range []uint64{0, 1, 255, 256, 257, 300, 599, 600} {
		left := audit.NewTree()
		for _, h := range m.hashes[:cut] {
			_ = left.Append(h, nil)
		}
		right := audit.NewRange(cut)
		var snap *audit.Range
		for i, h := range m.hashes[cut:] {
			if err := right.Append(h, nil); err != nil {
				t.Fatal(err)
			}
			if cut+uint64(i)+1 == 450 {
				snap = right.Clone()
			}
		}
		if snap != nil {
			at := left.Clone()
			if err := at.AppendRange(snap, nil); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(at.Root(), m.root(450)) {
				t.Errorf("cut %d: root at the snapshot differs", cut)
			}
		}
		if err := left.AppendRange(right, nil); err != nil {
			t.Fatal(err)
		}
		if left.Size() != 600 || !bytes.Equal(left.Root(), m.root(600)) {
			t.Errorf("cut %d: merged root differs", cut)
		}
	}
	if err := audit.NewTree().AppendRange(audit.NewRange(3), nil); err == nil {
		t.Error("merged a range that does not begin at the tree's end")
	}
}

// TestRangeMatchesCompact checks the allocation-free Range against
// transparency-dev's compact.Range: the same nodes visited in the same order
// with the same hashes, and the same roots, for ranges starting anywhere.
func TestRangeMatchesCompact(t *testing.T) {
	type visit struct {
		id compact.NodeID
		h  string
	}
	factory := &compact.RangeFactory{Hash: audit.NodeHash}
	for _, begin := range []uint64{0, 1, 2, 3, 5, 8, 255, 256, 257, 1000, 1 << 20, 1<<40 - 3} {
		for _, size := range []uint64{0, 1, 2, 3, 7, 64, 255, 256, 257, 700} {
			ours, ref := audit.NewRange(begin), factory.NewEmptyRange(begin)
			var got, want []visit
			for i := range size {
				leaf := audit.LeafHash(fmt.Appendf(nil, "leaf %d", begin+i))
				if err := ours.Append(leaf, func(id compact.NodeID, h []byte) { got = append(got, visit{id, string(h)}) }); err != nil {
					t.Fatal(err)
				}
				if err := ref.Append(leaf, func(id compact.NodeID, h []byte) { want = append(want, visit{id, string(h)}) }); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("begin %d size %d: visited %d nodes, compact visits %d (or they differ)", begin, size, len(got), len(want))
			}
			if ours.Begin() != ref.Begin() || ours.End() != ref.End() {
				t.Fatalf("begin %d size %d: [%d, %d), compact [%d, %d)", begin, size, ours.Begin(), ours.End(), ref.Begin(), ref.End())
			}
			// Merging into a tree is how the roots are used: compare them
			// through a tree of the right size built from the same leaves.
			if begin == 0 {
				tr := audit.NewTree()
				if err := tr.AppendRange(ours, nil); err != nil {
					t.Fatal(err)
				}
				root, err := ref.GetRootHash(nil)
				if size > 0 && (err != nil || !bytes.Equal(tr.Root(), root)) {
					t.Fatalf("size %d: root differs from compact's", size)
				}
			}
		}
	}
}

func TestRangeAppendDoesNotAllocate(t *testing.T) {
	r := audit.NewRange(3)
	leaf := audit.LeafHash([]byte("x"))
	visit := func(compact.NodeID, []byte) {}
	if n := testing.AllocsPerRun(1000, func() { _ = r.Append(leaf, visit) }); n != 0 {
		t.Errorf("Append allocates %.1f times", n)
	}
}
