package audit

import (
	"bytes"
	"fmt"
)

// The verifier core, written once for every place the log is checked: the
// offline check of an export (VerifyExport) and the database check of the
// stored log (broker/postgres). Each reads the leaves its own way and
// injects only that I/O; the algorithm is this one.
//
// A log is checked as runs of consecutive leaves. Whoever reads the leaves
// feeds each run in index order (Run.Append), so runs can be checked on
// several cores at once; a run hashes its leaves into a compact range and
// keeps a snapshot of that range at every signed tree size it passes. A
// Joiner then appends the runs, in order, to one tree and checks the root
// at each signed size: the result is exactly that of a single ordered pass.

// Bound is a tree size with a trusted (signed) root.
type Bound struct {
	Size uint64
	Root []byte
}

// Run is a run of consecutive leaves and the snapshots of its compact
// range at the signed sizes it passes. The zero Run is not usable: call
// Reset first. A Run is not safe for concurrent use, and appending never
// allocates except for a snapshot.
type Run struct {
	rng    Range
	bounds []Bound // the signed sizes to snapshot at, increasing
	next   int     // index in bounds of the next signed size ahead
	snaps  []runSnap
}

type runSnap struct {
	b   Bound
	rng *Range
}

// NewRun returns a run starting at leaf begin that snapshots its range at
// each size in bounds (increasing).
func NewRun(begin uint64, bounds []Bound) *Run {
	r := &Run{}
	r.Reset(begin, bounds)
	return r
}

// Reset empties r and starts it at leaf begin, keeping its buffers.
func (r *Run) Reset(begin uint64, bounds []Bound) {
	r.rng = Range{begin: begin, end: begin}
	r.bounds = bounds
	// The first signed size ahead of the run is the first one above begin.
	lo, hi := 0, len(bounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bounds[m].Size <= begin {
			lo = m + 1
		} else {
			hi = m
		}
	}
	r.next = lo
	r.snaps = r.snaps[:0]
}

// Append adds the next leaf by its leaf hash; visit (may be nil) sees the
// nodes the append completes, as Range.Append.
func (r *Run) Append(leafHash []byte, visit Visitor) error {
	if err := r.rng.Append(leafHash, visit); err != nil {
		return err
	}
	if r.next < len(r.bounds) && r.bounds[r.next].Size == r.rng.end {
		r.snaps = append(r.snaps, runSnap{r.bounds[r.next], r.rng.Clone()})
		r.next++
	}
	return nil
}

// Begin is the run's first leaf.
func (r *Run) Begin() uint64 { return r.rng.begin }

// End is one past the run's last leaf.
func (r *Run) End() uint64 { return r.rng.end }

// Joiner joins runs, in order, into one tree and checks it at every signed
// size.
type Joiner struct {
	tree     *Tree
	verified uint64 // the last signed size whose root matched
}

// NewJoiner returns a joiner of an empty tree.
func NewJoiner() *Joiner { return &Joiner{tree: NewTree()} }

// Join appends r, which must begin where the joined runs end, and checks
// the root at each signed size r passed. visit (may be nil) sees the nodes
// the merge completes (subtrees spanning two runs). The range is appended
// even when a root differs, so the tree holds every leaf fed; the first
// differing root is returned as a *VerifyError over the range between the
// last matching signed size and it, wrapping a *MismatchError.
func (j *Joiner) Join(r *Run, visit Visitor) error {
	var mismatch error
	for _, s := range r.snaps {
		t := j.tree.Clone()
		if err := t.AppendRange(s.rng, nil); err != nil {
			return err
		}
		if root := t.Root(); !bytes.Equal(root, s.b.Root) {
			mismatch = &VerifyError{Index: j.verified, End: s.b.Size,
				Reason: fmt.Sprintf("the root of tree size %d differs from the signed one: an entry in this range was altered", s.b.Size),
				Err: &MismatchError{Err: ErrRootMismatch, What: fmt.Sprintf("root of tree size %d", s.b.Size),
					Expected: s.b.Root, Computed: root}}
			break
		}
		j.verified = s.b.Size
	}
	if err := j.tree.AppendRange(&r.rng, visit); err != nil {
		return err
	}
	return mismatch
}

// Size is the number of leaves joined.
func (j *Joiner) Size() uint64 { return j.tree.Size() }

// Root is the root of the joined tree.
func (j *Joiner) Root() []byte { return j.tree.Root() }

// State is the joined tree's compact state (Tree.State).
func (j *Joiner) State() [][]byte { return j.tree.State() }

// Verified is the largest signed size whose root matched so far: every
// leaf below it is vouched for by a signature.
func (j *Joiner) Verified() uint64 { return j.verified }
