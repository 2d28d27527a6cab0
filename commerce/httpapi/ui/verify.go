package ui

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// witness verifies the log's checkpoints as an auditor would, inside the
// broker: each checkpoint's signature against the pinned keys, and each
// newer checkpoint's consistency with the newest one verified before (so the
// log cannot be rewritten or forked behind the dashboard's back). With a
// TrustStore the newest verified checkpoint is kept outside the database
// and survives restarts, so a log cut back to an older size (an old backup
// restored, or the tail deleted and the tree rewound) is caught at the first
// check; without one the first checkpoint seen is trusted on first use.
//
// A failure does not move the witness on: the next check compares against
// the same earlier checkpoint and fails again, so a forked log stays
// flagged until someone looks.
type witness struct {
	mu        sync.Mutex
	seen      *audit.Checkpoint
	store     TrustStore // nil: remember in memory only
	loaded    bool       // store read (once, at the first check)
	fromStore bool       // seen came from the store and not from this process
	log       *slog.Logger
}

// TrustStore keeps the last checkpoint note the dashboard verified outside
// the database being verified (BROKER_TRUSTED_CHECKPOINT).
type TrustStore interface {
	// Load returns the kept note, "" when there is none yet.
	Load() (string, error)
	// Save replaces the kept note, atomically.
	Save(note string) error
}

// CheckStatus is the outcome of one verification of the latest checkpoint.
type CheckStatus struct {
	OK         bool
	Empty      bool // no checkpoint signed yet
	Error      string
	Checked    time.Time
	Checkpoint audit.Checkpoint
	Note       string
	// PrevSize is the size of the checkpoint it was proven consistent
	// with; HasPrev is false on first use.
	PrevSize uint64
	HasPrev  bool
	// PrevTrusted: that checkpoint came from the trusted checkpoint kept
	// outside the database.
	PrevTrusted bool
	// Mismatch: the stored log is not an append-only extension of the
	// checkpoint verified before (shrunk, forked or rewritten), or the
	// trusted checkpoint kept outside the database does not verify.
	Mismatch bool
}

// RootHex is the checkpoint's root in hex.
func (s CheckStatus) RootHex() string { return hex.EncodeToString(s.Checkpoint.Root) }

// verifyNote verifies a checkpoint note against each key until one signed it.
func verifyNote(note string, keys []audit.PublicKey) (audit.Checkpoint, error) {
	if len(keys) == 0 {
		return audit.Checkpoint{}, errors.New("no checkpoint key is configured")
	}
	var first error
	for _, k := range keys {
		cp, err := k.VerifyCheckpoint([]byte(note))
		if err == nil {
			return cp, nil
		}
		if first == nil {
			first = err
		}
	}
	return audit.Checkpoint{}, first
}

// loadTrusted reads the kept checkpoint once; the caller holds w.mu.
func (w *witness) loadTrusted(keys []audit.PublicKey, st *CheckStatus) bool {
	if w.loaded || w.store == nil {
		return true
	}
	note, err := w.store.Load()
	if err != nil {
		st.Error = "could not read the trusted checkpoint kept outside the database: " + err.Error()
		return false
	}
	if note != "" {
		cp, err := verifyNote(note, keys)
		if err != nil {
			st.Error = "the trusted checkpoint kept outside the database does not verify with the log's keys: " + err.Error()
			st.Mismatch = true
			return false
		}
		w.seen, w.fromStore = &cp, true
	}
	w.loaded = true
	return true
}

// check fetches the latest checkpoint, verifies it and its consistency with
// the newest one verified before, and remembers it (and keeps it in the
// store) when all is well.
func (w *witness) check(ctx context.Context, log AuditLog, keys []audit.PublicKey, now time.Time) CheckStatus {
	st := CheckStatus{Checked: now.UTC()}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.loadTrusted(keys, &st) {
		return st
	}
	if w.seen != nil {
		st.PrevSize, st.HasPrev, st.PrevTrusted = w.seen.Size, true, w.fromStore
	}
	note, err := log.Checkpoint(ctx)
	if broker.IsNotFound(err) {
		if w.seen != nil && w.seen.Size > 0 {
			st.Error = fmt.Sprintf("the log has no signed checkpoint, but one of %d entries was verified before: the log was cut back or replaced", w.seen.Size)
			st.Mismatch = true
			return st
		}
		st.OK, st.Empty = true, true
		return st
	}
	if err != nil {
		st.Error = "could not fetch the checkpoint: " + broker.ErrorMessage(err)
		return st
	}
	st.Note = note
	cp, err := verifyNote(note, keys)
	if err != nil {
		st.Error = "signature check failed: " + err.Error()
		return st
	}
	st.Checkpoint = cp

	if w.seen != nil {
		if err := extends(ctx, log, *w.seen, cp); err != nil {
			st.Error = err.Error()
			st.Mismatch = true
			return st
		}
	}
	grew := w.seen == nil || cp.Size > w.seen.Size
	cp.Root = bytes.Clone(cp.Root)
	w.seen = &cp
	st.OK = true
	if grew && w.store != nil {
		if err := w.store.Save(note); err != nil && w.log != nil {
			w.log.Warn("audit witness: could not keep the verified checkpoint", "err", err)
		} else if err == nil {
			w.fromStore = true
		}
	}
	return st
}

// extends proves that the tree of newer extends the tree of older.
func extends(ctx context.Context, log AuditLog, older, newer audit.Checkpoint) error {
	switch {
	case newer.Origin != older.Origin:
		return fmt.Errorf("the log's origin changed from %q to %q", older.Origin, newer.Origin)
	case newer.Size < older.Size:
		return fmt.Errorf("the log shrank from %d to %d entries: it was cut back (an older backup restored, or its tail deleted)", older.Size, newer.Size)
	case newer.Size == older.Size:
		if !bytes.Equal(newer.Root, older.Root) {
			return fmt.Errorf("two different roots for %d entries: %x and %x", newer.Size, older.Root, newer.Root)
		}
		return nil
	case older.Size == 0:
		return nil // the empty tree is a prefix of every tree
	}
	p, err := log.Consistency(ctx, older.Size, newer.Size)
	if err != nil {
		return fmt.Errorf("could not fetch the consistency proof %d→%d: %s", older.Size, newer.Size, broker.ErrorMessage(err))
	}
	if p.From != older.Size || p.To != newer.Size {
		return fmt.Errorf("asked for the consistency proof %d→%d, got %d→%d", older.Size, newer.Size, p.From, p.To)
	}
	if err := p.Verify(older.Root, newer.Root); err != nil {
		return fmt.Errorf("not consistent with the checkpoint of %d entries seen before: %v", older.Size, err)
	}
	return nil
}

// proofView is an entry's inclusion proof as the detail page shows it.
type proofView struct {
	Verified bool
	Pending  bool // the entry is newer than the latest checkpoint
	Error    string
	Size     uint64
	Root     string
	LeafHash string
	Hashes   []string
}

// proveEntry verifies that e is in the tree of the verified checkpoint cp:
// the hash of e's canonical leaf must be the proof's leaf hash, and the
// proof must lead from it to cp's root.
func proveEntry(ctx context.Context, log AuditLog, e audit.Entry, cp audit.Checkpoint) proofView {
	pv := proofView{Size: cp.Size, Root: hex.EncodeToString(cp.Root)}
	leaf, err := e.Canonical()
	if err != nil {
		pv.Error = "the entry has no canonical form: " + err.Error()
		return pv
	}
	lh := audit.LeafHash(leaf)
	pv.LeafHash = hex.EncodeToString(lh)
	if e.Index >= cp.Size {
		pv.Pending = true
		return pv
	}
	p, err := log.Inclusion(ctx, e.Index, cp.Size)
	if err != nil {
		pv.Error = "could not fetch the inclusion proof: " + broker.ErrorMessage(err)
		return pv
	}
	for _, h := range p.Hashes {
		pv.Hashes = append(pv.Hashes, hex.EncodeToString(h))
	}
	switch {
	case p.Index != e.Index || p.Size != cp.Size:
		pv.Error = fmt.Sprintf("asked for entry %d in %d, the proof is for entry %d in %d", e.Index, cp.Size, p.Index, p.Size)
	case !bytes.Equal(p.LeafHash, lh):
		pv.Error = fmt.Sprintf("the log holds leaf hash %x for this index, the entry shown hashes to %x", p.LeafHash, lh)
	default:
		if err := p.Verify(cp.Root); err != nil {
			pv.Error = "the proof does not lead to the signed root: " + err.Error()
		} else {
			pv.Verified = true
		}
	}
	return pv
}

// CheckAudit verifies the latest checkpoint now, as the overview does, and
// reports the outcome to Deps.OnCheck. brokerd runs it periodically, so the
// trusted checkpoint and the metric stay current with no officer looking.
func (u *UI) CheckAudit(ctx context.Context) CheckStatus {
	st := u.witness.check(ctx, u.d.Audit, u.d.CheckpointKeys(), u.d.Now())
	if u.d.OnCheck != nil {
		u.d.OnCheck(st)
	}
	return st
}

// WatchAudit runs CheckAudit at once and then every interval until ctx
// ends, logging each failed check (sizes and whether the log rewrote a
// checkpoint it had shown, nothing else): the trusted checkpoint file and
// Deps.OnCheck's metric stay current without an officer looking.
func (u *UI) WatchAudit(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if st := u.CheckAudit(ctx); !st.OK && ctx.Err() == nil {
			u.d.Log.Error("audit log verification failed", "mismatch", st.Mismatch, "size", st.Checkpoint.Size,
				"trusted_size", st.PrevSize)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
