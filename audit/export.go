package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Export formats: the first line of a JSONL export is a header naming one.
const (
	// ExportFormat is a complete export: every leaf of the tree of the
	// header's checkpoint, in index order, one per line. VerifyExport
	// checks it offline against the signed root.
	ExportFormat = "sieve-audit/v1"
	// ExportFormatFiltered is a filtered export: a subset of those leaves,
	// in index order. Each line is a canonical leaf, but the set cannot be
	// checked against the root (use inclusion proofs per entry instead).
	ExportFormatFiltered = "sieve-audit/v1+filtered"
)

// MaxExportHistory bounds the earlier checkpoints an export header carries.
const MaxExportHistory = 1024

// ExportHeader is the first line of a JSONL export.
type ExportHeader struct {
	Format string `json:"format"`
	// Checkpoint is the signed checkpoint note the export is complete for.
	Checkpoint string `json:"checkpoint"`
	// History holds earlier signed checkpoints of the same log, by
	// increasing size. They are optional: a verifier checks the root at
	// each of their sizes too, which narrows an altered entry down to the
	// range between two checkpoints.
	History []string `json:"history,omitempty"`
	// Filter describes the selection of a filtered export.
	Filter map[string]string `json:"filter,omitempty"`
}

// ExportWriter writes a JSONL export: the header, then one leaf per line.
type ExportWriter struct {
	w      *bufio.Writer
	n      uint64
	next   uint64
	strict bool // complete export: leaves must come as 0, 1, 2, …
}

// NewExportWriter writes the header h to w and returns a writer for the
// leaves. For a complete export (ExportFormat) the leaves must then be
// written in index order from 0.
func NewExportWriter(w io.Writer, h ExportHeader) (*ExportWriter, error) {
	if h.Format != ExportFormat && h.Format != ExportFormatFiltered {
		return nil, fmt.Errorf("audit: unknown export format %q", h.Format)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.Write(b)
	if err := bw.WriteByte('\n'); err != nil {
		return nil, err
	}
	return &ExportWriter{w: bw, strict: h.Format == ExportFormat}, nil
}

// WriteLeaf writes one canonical leaf. In a complete export its index must
// be the next one; in a filtered export indexes must increase.
func (x *ExportWriter) WriteLeaf(leaf []byte) error {
	var v LeafView
	if err := ScanLeaf(leaf, &v); err != nil {
		return err
	}
	if (x.strict && v.Index != x.next) || (!x.strict && x.n > 0 && v.Index < x.next) {
		return fmt.Errorf("audit: export leaf %d out of order (next is %d)", v.Index, x.next)
	}
	x.next = v.Index + 1
	x.n++
	x.w.Write(leaf)
	return x.w.WriteByte('\n')
}

// Count is the number of leaves written.
func (x *ExportWriter) Count() uint64 { return x.n }

// Flush writes out buffered data.
func (x *ExportWriter) Flush() error { return x.w.Flush() }

// maxHeaderLine bounds the header line (a checkpoint and its history).
const maxHeaderLine = (MaxExportHistory + 2) * MaxCheckpointSize

// ReadExportHeader reads and parses the header line of an export. For a
// filtered export it returns the header together with ErrFilteredExport.
func ReadExportHeader(br *bufio.Reader) (ExportHeader, error) {
	line, err := readLine(br, maxHeaderLine)
	if err != nil {
		return ExportHeader{}, fmt.Errorf("%w: header: %v", ErrMalformedExport, err)
	}
	var h ExportHeader
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return ExportHeader{}, fmt.Errorf("%w: header: %v", ErrMalformedExport, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ExportHeader{}, fmt.Errorf("%w: header: trailing data", ErrMalformedExport)
	}
	switch h.Format {
	case ExportFormat:
	case ExportFormatFiltered:
		return h, ErrFilteredExport
	default:
		return ExportHeader{}, fmt.Errorf("%w: unknown format %q", ErrMalformedExport, h.Format)
	}
	if len(h.History) > MaxExportHistory {
		return ExportHeader{}, fmt.Errorf("%w: %d history checkpoints", ErrMalformedExport, len(h.History))
	}
	return h, nil
}

// readLine reads one '\n'-terminated line of at most max bytes (without
// the newline). A final line without a newline is an error: a truncated
// file must not pass.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == nil {
			if long == nil {
				return frag[:len(frag)-1], nil
			}
			long = append(long, frag...)
			return long[:len(long)-1], nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(frag) > max {
				return nil, fmt.Errorf("line longer than %d bytes", max)
			}
			long = append(long, frag...)
			continue
		}
		if err == io.EOF && len(frag)+len(long) > 0 {
			return nil, errors.New("last line has no newline (truncated)")
		}
		return nil, err
	}
}

// VerifyExport checks a complete JSONL export offline: the header's
// checkpoint (and any history) must be signed by key (a PublicKey, or a
// KeySet of current and retired keys); then every line must
// be a canonical leaf, the leaves must hold the indexes 0..n-1 in order, n
// must be the checkpoint size, and the recomputed tree must have the
// signed root at the checkpoint size (and at each history size). It reads
// the export once, in bounded memory and on every core (GOMAXPROCS
// workers check and hash batches of lines, in order), calling progress (if
// not nil) now and then, from the calling goroutine, with the entries
// checked so far and the total.
//
// A bad entry is reported as a *VerifyError naming the first bad index; a
// broken header wraps ErrMalformedExport, ErrBadSignature or
// ErrMalformedCheckpoint; a filtered export is ErrFilteredExport.
func VerifyExport(r io.Reader, key CheckpointVerifier, progress func(done, total uint64)) (size uint64, root []byte, err error) {
	return verifyExport(r, key, nil, progress)
}

// verifyExport is VerifyExport, and with a policy also the check that the
// export's checkpoint carries its witness quorum.
func verifyExport(r io.Reader, key CheckpointVerifier, p *Policy, progress func(done, total uint64)) (size uint64, root []byte, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	h, err := ReadExportHeader(br)
	if err != nil {
		return 0, nil, err
	}
	cp, err := key.VerifyCheckpoint([]byte(h.Checkpoint))
	if err != nil {
		return 0, nil, fmt.Errorf("export checkpoint: %w", err)
	}
	if p != nil {
		if err := p.CheckQuorum([]byte(h.Checkpoint)); err != nil {
			return 0, nil, fmt.Errorf("export checkpoint of size %d: %w", cp.Size, err)
		}
	}
	bounds, err := historyBounds(h.History, key, cp)
	if err != nil {
		return 0, nil, err
	}
	return verifyLeaves(br, cp.Size, bounds, progress)
}

// historyBounds verifies the history checkpoints and returns every signed
// (size, root) to check, by increasing size, ending with cp.
func historyBounds(history []string, key CheckpointVerifier, cp Checkpoint) ([]Bound, error) {
	var out []Bound
	for i, n := range history {
		h, err := key.VerifyCheckpoint([]byte(n))
		if err != nil {
			return nil, fmt.Errorf("export history checkpoint %d: %w", i, err)
		}
		if h.Origin != cp.Origin {
			return nil, fmt.Errorf("%w: history checkpoint %d has origin %q", ErrMalformedExport, i, h.Origin)
		}
		if h.Size > cp.Size || (len(out) > 0 && h.Size <= out[len(out)-1].Size) {
			return nil, fmt.Errorf("%w: history checkpoints not in increasing size below the checkpoint", ErrMalformedExport)
		}
		if h.Size == cp.Size && !bytes.Equal(h.Root, cp.Root) {
			return nil, &MismatchError{Err: ErrInconsistent, What: fmt.Sprintf("two signed roots for size %d", h.Size),
				Expected: cp.Root, Computed: h.Root}
		}
		if h.Size > 0 {
			out = append(out, Bound{h.Size, h.Root})
		}
	}
	if len(out) == 0 || out[len(out)-1].Size != cp.Size {
		out = append(out, Bound{cp.Size, cp.Root})
	}
	if cp.Size == 0 {
		out = nil
		if !bytes.Equal(cp.Root, EmptyRoot()) {
			return nil, &MismatchError{Err: ErrRootMismatch, What: "root of the empty tree", Expected: cp.Root, Computed: EmptyRoot()}
		}
	}
	return out, nil
}

// SelectHistory picks at most max sizes from sorted sizes (ascending),
// spread evenly and always keeping the last, for an export's history.
func SelectHistory(sizes []uint64, max int) []uint64 {
	if len(sizes) <= max {
		return slices.Clone(sizes)
	}
	out := make([]uint64, 0, max)
	for i := 1; i <= max; i++ {
		out = append(out, sizes[i*len(sizes)/max-1])
	}
	return out
}
