package audit

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every verification failure wraps exactly one of them, so
// callers can decide with errors.Is; the wrapped detail says what differed.
var (
	// ErrInvalidProof: a proof is malformed for the sizes it claims (wrong
	// number of hashes, a hash of the wrong length, an index out of range).
	// The server is broken or hostile; do not trust anything else it says.
	ErrInvalidProof = errors.New("audit: malformed proof")

	// ErrRootMismatch: the data and proof hash to a root other than the
	// trusted (signed) one. The log was altered, or the server is lying.
	// Keep the evidence (the checkpoint and the response) and escalate.
	ErrRootMismatch = errors.New("audit: root mismatch")

	// ErrBadSignature: a checkpoint is not signed by the pinned key, or its
	// origin is not the key's name. Check the key you pinned; if it is
	// right, the checkpoint is forged.
	ErrBadSignature = errors.New("audit: checkpoint signature not verified")

	// ErrMalformedCheckpoint: a checkpoint note is not in the C2SP
	// tlog-checkpoint format.
	ErrMalformedCheckpoint = errors.New("audit: malformed checkpoint")

	// ErrInconsistent: a newer checkpoint does not extend an older one (the
	// log shrank or was rewritten: a fork or a rollback). This is proof of
	// misbehaviour when both checkpoints verify: keep them both.
	ErrInconsistent = errors.New("audit: checkpoints are not consistent")

	// ErrOutOfRange: an index or size beyond the tree was asked for.
	ErrOutOfRange = errors.New("audit: out of range")

	// ErrMalformedExport: an export file's header or framing is broken.
	ErrMalformedExport = errors.New("audit: malformed export")

	// ErrFilteredExport: the export holds a filtered subset of the log,
	// which cannot be checked against the checkpoint root as a whole.
	ErrFilteredExport = errors.New("audit: filtered export cannot be verified against the root")
)

// MismatchError reports a hash that differs from the trusted one. It wraps
// its sentinel (ErrRootMismatch or ErrInconsistent).
type MismatchError struct {
	Err      error  // the sentinel
	What     string // what was compared, e.g. "root of tree size 8"
	Expected []byte // the trusted value
	Computed []byte // what the data hashes to
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: %s: expected %x, computed %x", e.Err, e.What, e.Expected, e.Computed)
}

// Unwrap returns the sentinel.
func (e *MismatchError) Unwrap() error { return e.Err }

// VerifyError names the first bad entry found while verifying a log (an
// export file or the database). When the data only allows narrowing the
// damage to a range (an entry was altered together with its stored hash,
// so only a signed root catches it), End is the end of that range
// (exclusive) and Index its start; otherwise End is 0.
type VerifyError struct {
	Index  uint64
	End    uint64
	Reason string
	Err    error // the underlying sentinel or cause, if any
}

func (e *VerifyError) Error() string {
	if e.End > e.Index+1 {
		return fmt.Sprintf("audit: entries %d..%d: %s", e.Index, e.End-1, e.Reason)
	}
	return fmt.Sprintf("audit: entry %d: %s", e.Index, e.Reason)
}

// Unwrap returns the underlying cause.
func (e *VerifyError) Unwrap() error { return e.Err }
