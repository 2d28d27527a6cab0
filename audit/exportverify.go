package audit

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Checking an export is a pipeline, so that an auditor's every core works
// on it: one goroutine reads lines into batches, workers check the leaves
// of a batch (canonical form, index, leaf hash) and hash them into the
// batch's compact range, and the caller merges the ranges in order into
// the tree and checks it at each signed size. Memory stays bounded: a few
// batches per worker are in flight. Errors are reported exactly as a
// one-line-at-a-time check would: the first bad line, or the first signed
// size whose root differs, whichever comes first.

// exportBatchLines is how many lines a worker checks at a time.
const exportBatchLines = 4096

// leafBatch is a run of consecutive lines and, once done is closed, what
// checking them found.
type leafBatch struct {
	begin uint64 // the index of the first line's entry
	buf   []byte // the lines, without their newlines, end to end
	ends  []int  // where each line ends in buf
	stop  error  // why reading stopped after these lines, if it did for an error
	last  bool   // no lines follow

	run  Run   // the lines' leaves, for the Joiner
	err  error // the first bad line
	done chan struct{}
}

// check checks the batch's lines: the work of one worker.
func (b *leafBatch) check(bounds []Bound, lh *LeafHasher, view *LeafView) {
	b.run.Reset(b.begin, bounds)
	var h [HashSize]byte
	start := 0
	for j, end := range b.ends {
		leaf := b.buf[start:end]
		start = end
		i := b.begin + uint64(j)
		if err := ScanLeaf(leaf, view); err != nil {
			b.err = &VerifyError{Index: i, Reason: fmt.Sprintf("line %d: %v", i+2, err), Err: err}
			return
		}
		if got := view.Index; got != i {
			if got < i {
				b.err = &VerifyError{Index: got, Reason: fmt.Sprintf("line %d holds entry %d again (a duplicated, inserted or reordered line)", i+2, got)}
			} else {
				b.err = &VerifyError{Index: i, Reason: fmt.Sprintf("missing: line %d holds entry %d (deleted or reordered lines)", i+2, got)}
			}
			return
		}
		if err := b.run.Append(lh.Sum(h[:0], leaf), nil); err != nil {
			b.err = err
			return
		}
	}
}

// readBatches reads the leaf lines of br into batches and hands each to
// the workers (work) and, in order, to the merger (order), until the end of
// the export, a bad line or a line beyond size, or until quit is closed.
func readBatches(br *bufio.Reader, size uint64, free <-chan *leafBatch, work, order chan<- *leafBatch, quit <-chan struct{}) {
	defer close(order)
	defer close(work)
	next := uint64(0)
	for {
		var b *leafBatch
		select {
		case b = <-free:
		default:
			b = &leafBatch{}
		}
		*b = leafBatch{begin: next, buf: b.buf[:0], ends: b.ends[:0], run: b.run, done: make(chan struct{})}
		for len(b.ends) < exportBatchLines {
			line, err := readLine(br, MaxLeafSize)
			if err == io.EOF {
				b.last = true
				break
			}
			if err != nil {
				b.stop = &VerifyError{Index: next, Reason: fmt.Sprintf("line %d: %v", next+2, err), Err: ErrMalformedExport}
			} else if next >= size {
				b.stop = &VerifyError{Index: next, Reason: fmt.Sprintf("line %d: entry beyond the checkpoint size %d", next+2, size)}
			}
			if b.stop != nil {
				b.last = true
				break
			}
			b.buf = append(b.buf, line...)
			b.ends = append(b.ends, len(b.buf))
			next++
		}
		select {
		case order <- b:
		case <-quit:
			return
		}
		select {
		case work <- b:
		case <-quit:
			return
		}
		if b.last {
			return
		}
	}
}

// verifyLeaves checks the leaf lines of a complete export of size entries
// against the signed roots in bounds (increasing, the last at size).
func verifyLeaves(br *bufio.Reader, size uint64, bounds []Bound, progress func(done, total uint64)) (uint64, []byte, error) {
	workers := max(1, runtime.GOMAXPROCS(0))
	free := make(chan *leafBatch, 2*workers+2)
	work := make(chan *leafBatch)
	order := make(chan *leafBatch, 2*workers) // bounds the batches in flight
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { readBatches(br, size, free, work, order, quit) })
	for range workers {
		wg.Go(func() {
			lh := NewLeafHasher()
			var view LeafView
			for b := range work {
				b.check(bounds, lh, &view)
				close(b.done)
			}
		})
	}
	defer func() {
		close(quit)
		for range order { // let the reader see quit, whichever send it waits on
		}
		wg.Wait()
	}()

	join := NewJoiner()
	shown := uint64(0)
	for b := range order {
		<-b.done
		if err := join.Join(&b.run, nil); err != nil {
			return 0, nil, err
		}
		if b.err != nil {
			return 0, nil, b.err
		}
		if b.stop != nil {
			return 0, nil, b.stop
		}
		if progress != nil && join.Size()-shown >= 1<<16 {
			shown = join.Size()
			progress(shown, size)
		}
		select {
		case free <- b:
		default:
		}
	}
	if n := join.Size(); n < size {
		return 0, nil, &VerifyError{Index: n, Reason: fmt.Sprintf("missing: the export ends after %d of %d entries", n, size)}
	}
	if progress != nil {
		progress(size, size)
	}
	return size, join.Root(), nil
}
