package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size of leaf, node and root hashes (SHA-256).
const HashSize = sha256.Size

// Hasher is the RFC 6962 hasher of the log: SHA-256 with the leaf prefix
// 0x00 and the node prefix 0x01, so a leaf can never pass for a node.
var Hasher = rfc6962.DefaultHasher

// LeafHash returns the RFC 6962 hash of a leaf: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte { return Hasher.HashLeaf(leaf) }

// NodeHash returns the RFC 6962 hash of an inner node: SHA-256(0x01 || l || r).
func NodeHash(l, r []byte) []byte { return Hasher.HashChildren(l, r) }

// EmptyRoot is the root of the empty tree: SHA-256 of nothing.
func EmptyRoot() []byte { return Hasher.EmptyRoot() }

// hashChildren is NodeHash with a single allocation, for the hot loops of
// verification; it is tested to agree with the rfc6962 hasher.
func hashChildren(l, r []byte) []byte {
	if len(l) != HashSize || len(r) != HashSize {
		return Hasher.HashChildren(l, r)
	}
	var buf [1 + 2*HashSize]byte
	buf[0] = rfc6962.RFC6962NodeHashPrefix
	copy(buf[1:], l)
	copy(buf[1+HashSize:], r)
	sum := sha256.Sum256(buf[:])
	return sum[:]
}

// LeafHasher computes leaf hashes without allocating per call. It is not
// safe for concurrent use.
type LeafHasher struct{ buf []byte }

// NewLeafHasher returns a LeafHasher.
func NewLeafHasher() *LeafHasher { return &LeafHasher{} }

// Sum appends the leaf hash of leaf to dst and returns the result.
func (lh *LeafHasher) Sum(dst, leaf []byte) []byte {
	// One SHA-256 call over 0x00 || leaf is cheaper than streaming the
	// prefix and the leaf through a hash.Hash.
	lh.buf = append(append(lh.buf[:0], rfc6962.RFC6962LeafHashPrefix), leaf...)
	sum := sha256.Sum256(lh.buf)
	return append(dst, sum[:]...)
}

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// Tree is an incremental Merkle tree builder: a compact range over the
// leaves [0, Size). Appending costs O(1) amortised hashes and the state is
// at most 64 hashes, so a log of any size is extended (or recomputed from
// scratch, as verification does) in constant memory.
type Tree struct {
	rng *compact.Range
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{rng: rangeFactory.NewEmptyRange(0)} }

// ResumeTree returns the tree of the given size whose compact-range state
// (as returned by State) is state.
func ResumeTree(size uint64, state [][]byte) (*Tree, error) {
	for i, h := range state {
		if len(h) != HashSize {
			return nil, fmt.Errorf("audit: tree state hash %d has %d bytes", i, len(h))
		}
	}
	r, err := rangeFactory.NewRange(0, size, state)
	if err != nil {
		return nil, fmt.Errorf("audit: tree state: %w", err)
	}
	return &Tree{rng: r}, nil
}

// Visitor receives each node an append completes: the leaf itself (level
// 0) and every perfect subtree it closes, bottom up. The hash must not be
// modified.
type Visitor func(id compact.NodeID, hash []byte)

// Append adds a leaf by its leaf hash (see LeafHash). The tree keeps
// leafHash: the caller must not modify it afterwards. visit may be nil.
func (t *Tree) Append(leafHash []byte, visit Visitor) error {
	if len(leafHash) != HashSize {
		return fmt.Errorf("audit: leaf hash has %d bytes, want %d", len(leafHash), HashSize)
	}
	return t.rng.Append(leafHash, compact.VisitFn(visit))
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return t.rng.End() }

// Root returns the root hash (EmptyRoot for the empty tree).
func (t *Tree) Root() []byte {
	if t.rng.End() == 0 {
		return EmptyRoot()
	}
	root, err := t.rng.GetRootHash(nil)
	if err != nil { // impossible: the range starts at 0
		panic(err)
	}
	return root
}

// State returns the compact-range hashes: the roots of the perfect
// subtrees covering [0, Size), left to right. With Size it is everything
// needed to resume the tree (ResumeTree).
func (t *Tree) State() [][]byte {
	hs := t.rng.Hashes()
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = append([]byte(nil), h...)
	}
	return out
}

// Clone returns an independent copy of t.
func (t *Tree) Clone() *Tree {
	c, err := ResumeTree(t.Size(), t.State())
	if err != nil {
		panic(err)
	}
	return c
}

// Range is a compact range over consecutive leaves [Begin, End) that may
// start anywhere: a part of a tree built on its own (for instance in
// parallel with the parts before it) and merged with Tree.AppendRange.
//
// It is the hot loop of verification, so it keeps its hashes in place: the
// roots of the range's perfect subtrees, left to right, in a fixed array
// (a range over 2^64 leaves has at most 2*64 of them). Appending never
// allocates, and a Range is not safe for concurrent use.
type Range struct {
	begin, end uint64
	n          int
	hashes     [2 * 64][HashSize]byte
	node       [HashSize]byte // the node handed to a visitor
}

// NewRange returns an empty range starting at leaf begin.
func NewRange(begin uint64) *Range { return &Range{begin: begin, end: begin} }

// Append adds a leaf by its leaf hash, like Tree.Append, and calls visit
// (may be nil) with the leaf and every node the append completes, as
// compact.Range does. The hash passed to visit is valid only during the
// call. leafHash is copied.
func (r *Range) Append(leafHash []byte, visit Visitor) error {
	if len(leafHash) != HashSize {
		return fmt.Errorf("audit: leaf hash has %d bytes, want %d", len(leafHash), HashSize)
	}
	if r.end == math.MaxUint64 {
		return errors.New("audit: range is full")
	}
	if visit != nil {
		visit(compact.NewNodeID(0, r.end), leafHash)
	}
	h := [HashSize]byte(leafHash)
	// While the new node is a right child whose left sibling lies inside
	// the range, that sibling is the last root: merge them.
	level, index := uint(0), r.end
	for index&1 == 1 && (index-1)<<level >= r.begin {
		r.n--
		h = nodeHash32(&r.hashes[r.n], &h)
		level++
		index >>= 1
		if visit != nil {
			r.node = h
			visit(compact.NewNodeID(level, index), r.node[:])
		}
	}
	r.hashes[r.n] = h
	r.n++
	r.end++
	return nil
}

// nodeHash32 is SHA-256(0x01 || l || r) without allocating.
func nodeHash32(l, r *[HashSize]byte) [HashSize]byte {
	var buf [1 + 2*HashSize]byte
	buf[0] = rfc6962.RFC6962NodeHashPrefix
	copy(buf[1:], l[:])
	copy(buf[1+HashSize:], r[:])
	return sha256.Sum256(buf[:])
}

// Begin is the first leaf of the range.
func (r *Range) Begin() uint64 { return r.begin }

// End is one past the last leaf of the range.
func (r *Range) End() uint64 { return r.end }

// Clone returns an independent copy of r (a snapshot to merge later).
func (r *Range) Clone() *Range {
	c := *r
	return &c
}

// roots returns copies of the range's hashes, left to right.
func (r *Range) roots() [][]byte {
	out := make([][]byte, r.n)
	for i := range out {
		out[i] = bytes.Clone(r.hashes[i][:])
	}
	return out
}

// AppendRange extends t by the leaves of r, which must begin where t ends.
// visit (may be nil) receives the nodes the merge completes.
func (t *Tree) AppendRange(r *Range, visit Visitor) error {
	if r.Begin() != t.Size() {
		return fmt.Errorf("audit: range begins at %d, tree ends at %d", r.Begin(), t.Size())
	}
	// compact merges only ranges of one factory: rewrap r's hashes.
	rr, err := rangeFactory.NewRange(r.begin, r.end, r.roots())
	if err != nil {
		return err
	}
	return t.rng.AppendRange(rr, compact.VisitFn(visit))
}
