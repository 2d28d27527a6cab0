package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// VerifyAudit recomputes the tree from the stored entries and checks it
// against the signed checkpoints, verified with key. Every row must hold a
// canonical leaf whose index is its idx (0, 1, 2, … without gaps), whose
// hash is its leaf_hash, and whose fields equal the row's other columns;
// the subtree hashes stored for proofs must agree; the root at the size of
// every checkpoint checked (the latest one and up to 1024 earlier ones)
// must be the signed one; and the tree must match the stored tree head. It
// returns the size and root of the whole tree.
//
// Any edit, deletion, insertion or reordering is reported as an
// *audit.VerifyError naming the first bad index (or, for an entry altered
// together with its hash, the range between the checkpoints around it).
// progress, if not nil, is called now and then from one goroutine.
//
// The rows are read in one snapshot, split into idx ranges streamed in
// parallel (binary COPY in idx order, one connection and one goroutine per
// range) and joined as compact ranges, so the result is exactly that of a
// single ordered pass.
func (rp *AuditReports) VerifyAudit(ctx context.Context, key audit.PublicKey, progress func(done, total uint64)) (uint64, []byte, error) {
	return rp.VerifyAuditKeys(ctx, []audit.PublicKey{key}, progress)
}

// VerifyAuditKeys is VerifyAudit with several trusted keys, for a log whose
// signing key was rotated: every checkpoint checked must be signed by one
// of them.
func (rp *AuditReports) VerifyAuditKeys(ctx context.Context, keys []audit.PublicKey, progress func(done, total uint64)) (uint64, []byte, error) {
	if len(keys) == 0 {
		return 0, nil, broker.Errorf(broker.EInvalid, "no key to verify checkpoints with")
	}
	var done, total atomic.Uint64
	stop := startAuditProgress(progress, &done, &total)
	size, root, err := rp.verifyAudit(ctx, keys, &done, &total)
	stop(err == nil)
	if err != nil {
		return 0, nil, err
	}
	return size, root, nil
}

// auditVerifyParts is how many idx ranges verification streams at once.
func auditVerifyParts(size uint64) int {
	const minPart = 256 // below that a second connection costs more than it saves
	return int(max(1, min(uint64(runtime.GOMAXPROCS(0)), 4, size/minPart)))
}

func (rp *AuditReports) verifyAudit(ctx context.Context, keys []audit.PublicKey, done, total *atomic.Uint64) (uint64, []byte, error) {
	tx, err := rp.db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, nil, Translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	plan, err := loadAuditVerifyPlan(ctx, tx, keys)
	if err != nil {
		return 0, nil, err
	}
	total.Store(plan.size)
	parts := auditVerifyParts(plan.size)
	var snapshotID string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshotID); err != nil {
		return 0, nil, Translate(err)
	}
	runs := make([]*auditRowVerifier, parts)
	errs := make([]error, parts)
	ctxs := make([]context.Context, parts)
	cancels := make([]context.CancelFunc, parts)
	for k := range parts {
		ctxs[k], cancels[k] = context.WithCancel(ctx)
		defer cancels[k]()
	}
	var wg sync.WaitGroup
	for k := range parts {
		lo, sql := auditPartCopy(plan.size, k, parts)
		runs[k] = newAuditRowVerifier(plan, done, lo)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = rp.auditCopyOutSnapshot(ctxs[k], snapshotID, sql, runs[k].row)
			runs[k].flushProgress()
			if errs[k] != nil { // later parts cannot hold the first bad index
				for j := k + 1; j < parts; j++ {
					cancels[j]()
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return 0, nil, Translate(ctx.Err())
	}
	return finishAuditVerify(plan, runs, errs)
}

// auditPartCopy returns the first idx of part k of parts over a log of size
// entries, and the COPY that streams the part's rows in idx order. Part k
// reads idx in [bound k, bound k+1); the first part has no lower bound and
// the last no upper one, so rows outside [0, size) are seen.
func auditPartCopy(size uint64, k, parts int) (uint64, string) {
	lo, hi := size*uint64(k)/uint64(parts), size*uint64(k+1)/uint64(parts)
	var conds []string
	if k > 0 {
		conds = append(conds, fmt.Sprintf("idx >= %d", lo))
	}
	if k < parts-1 {
		conds = append(conds, fmt.Sprintf("idx < %d", hi))
	}
	sql := "COPY (SELECT " + auditColumns + " FROM audit_log"
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	return lo, sql + " ORDER BY idx) TO STDOUT (FORMAT binary)"
}

// auditVerifyPlan is what verification checks the rows against, read in the
// same snapshot as the rows.
type auditVerifyPlan struct {
	head   auditHead
	size   uint64
	bounds []audit.Bound     // signed (size, root), increasing
	nodes  map[uint64][]byte // stored level-8 node hashes by index
	latest audit.Checkpoint
}

func loadAuditVerifyPlan(ctx context.Context, tx pgx.Tx, keys []audit.PublicKey) (*auditVerifyPlan, error) {
	p := &auditVerifyPlan{nodes: map[uint64][]byte{}}
	err := tx.QueryRow(ctx, `SELECT size, root, state, coalesce(time_hwm, '0001-01-01T00:00:00Z'), max_lag_us, checkpoint_size,
		coalesce(checkpoint_at, '0001-01-01T00:00:00Z') FROM audit_tree WHERE id`).Scan(&p.head.size, &p.head.root, &p.head.state,
		&p.head.timeHwm, &p.head.maxLagMicros, &p.head.checkpointSize, &p.head.checkpointAt)
	if err != nil {
		return nil, Translate(err)
	}
	p.size = uint64(p.head.size)
	rows, err := tx.Query(ctx, `SELECT size FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		return nil, Translate(err)
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, Translate(err)
	}
	if len(sizes) == 0 {
		if p.size > 0 {
			return nil, fmt.Errorf("%w: the log has %d entries and no signed checkpoint", audit.ErrBadSignature, p.size)
		}
		return p, nil
	}
	us := make([]uint64, len(sizes))
	for i, s := range sizes {
		us[i] = uint64(s)
	}
	pick := audit.SelectHistory(us, audit.MaxExportHistory+1)
	picked := make([]int64, len(pick))
	for i, s := range pick {
		picked[i] = int64(s)
	}
	rows, err = tx.Query(ctx, `SELECT size, note FROM audit_checkpoints WHERE size = ANY($1) ORDER BY size`, picked)
	if err != nil {
		return nil, Translate(err)
	}
	var s int64
	var note string
	_, err = pgx.ForEachRow(rows, []any{&s, &note}, func() error {
		var cp audit.Checkpoint
		var err error
		for _, key := range keys {
			if cp, err = key.VerifyCheckpoint([]byte(note)); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("checkpoint of size %d: %w", s, err)
		}
		if cp.Size != uint64(s) {
			return fmt.Errorf("%w: checkpoint row of size %d holds a note of size %d", audit.ErrBadSignature, s, cp.Size)
		}
		if cp.Size > 0 {
			p.bounds = append(p.bounds, audit.Bound{Size: cp.Size, Root: cp.Root})
		}
		p.latest = cp
		return nil
	})
	if err != nil {
		return nil, Translate(err)
	}
	if p.latest.Size > p.size {
		return nil, &audit.VerifyError{Index: p.size, Reason: fmt.Sprintf(
			"missing: the tree head has %d entries but a signed checkpoint covers %d", p.size, p.latest.Size)}
	}
	rows, err = tx.Query(ctx, `SELECT idx, hash FROM audit_nodes WHERE level = $1`, int16(auditNodeLevel))
	if err != nil {
		return nil, Translate(err)
	}
	var idx int64
	var hash []byte
	_, err = pgx.ForEachRow(rows, []any{&idx, &hash}, func() error {
		p.nodes[uint64(idx)] = slices.Clone(hash)
		return nil
	})
	return p, Translate(err)
}

func startAuditProgress(progress func(done, total uint64), done, total *atomic.Uint64) func(ok bool) {
	if progress == nil {
		return func(bool) {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				n := total.Load()
				progress(min(done.Load(), n), n)
			}
		}
	}()
	return func(ok bool) {
		close(quit)
		<-finished
		if ok {
			n := total.Load()
			progress(n, n)
		}
	}
}

// auditRowVerifier checks a run of consecutive rows, from idx begin, and
// feeds their leaves to an audit.Run (the verifier core joins the runs).
// It is fed the raw fields of binary COPY tuples and stops at the first
// bad row.
type auditRowVerifier struct {
	plan     *auditVerifyPlan
	begin    uint64
	next     uint64
	run      *audit.Run
	lh       *audit.LeafHasher
	view     audit.LeafView
	done     *atomic.Uint64
	pending  uint64               // rows not yet added to done
	leafHash [audit.HashSize]byte // the current row's (rng copies it)

	// time_hwm is checked as a chain: each row's against the previous
	// row's. The first row's is checked by finishAuditVerify, which knows
	// the rows before it (firstHwm, firstTime).
	hwm       int64
	firstHwm  int64
	firstTime int64
	maxLag    int64

	visitFn audit.Visitor // v.visit, bound once (a method value allocates)
	nodeErr error
}

func newAuditRowVerifier(plan *auditVerifyPlan, done *atomic.Uint64, begin uint64) *auditRowVerifier {
	v := &auditRowVerifier{plan: plan, lh: audit.NewLeafHasher(), done: done, begin: begin, next: begin,
		run: audit.NewRun(begin, plan.bounds)}
	v.visitFn = v.visit
	return v
}

func (v *auditRowVerifier) bad(idx uint64, format string, args ...any) error {
	return &audit.VerifyError{Index: idx, Reason: fmt.Sprintf(format, args...)}
}

func pgAuditMicros(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)) + auditPGEpochMicros, true
}

// row checks one row: f holds the auditColumns.
func (v *auditRowVerifier) row(f [][]byte) error {
	if len(f[0]) != 8 {
		return v.bad(v.next, "row with a malformed idx")
	}
	sidx := int64(binary.BigEndian.Uint64(f[0]))
	switch {
	case sidx < 0:
		return v.bad(0, "a row has the negative idx %d", sidx)
	case uint64(sidx) < v.next:
		return v.bad(uint64(sidx), "idx %d appears twice", sidx)
	case uint64(sidx) > v.next:
		return v.bad(v.next, "missing: the next row has idx %d", sidx)
	}
	idx := uint64(sidx)
	leaf := f[5]
	h := v.lh.Sum(v.leafHash[:0], leaf)
	t, ok := pgAuditMicros(f[1])
	// The leaf's bytes are the tree's: an edited leaf fails the subtree and
	// signed-root checks however its row was changed, and the log only
	// ever appends canonical leaves. What the tree cannot vouch for is the
	// row around the leaf: its leaf_hash, and the columns the explorer
	// filters on. Those are checked here, by LeafMatches, in one pass
	// that compares the columns with the leaf's bytes. When it cannot
	// show them equal (an escaped field, or something wrong), the leaf is
	// scanned in full and each check made in turn, so an error names the
	// row and what is wrong with it.
	if !ok || !bytes.Equal(h, f[3]) || !audit.LeafMatches(leaf, idx, t, f[4]) {
		if err := v.checkRow(idx, leaf, h, f); err != nil {
			return err
		}
	}
	hwm, ok := pgAuditMicros(f[2])
	if !ok {
		return v.bad(idx, "column time_hwm is malformed")
	}
	if idx == v.begin {
		if hwm < t {
			return v.bad(idx, "column time_hwm is before the entry's time")
		}
		v.firstHwm, v.firstTime = hwm, t
	} else {
		if want := max(v.hwm, t); hwm != want {
			return v.bad(idx, "column time_hwm differs from the running maximum of time")
		}
		v.maxLag = max(v.maxLag, v.hwm-t)
	}
	v.hwm = hwm
	if err := v.run.Append(h, v.visitFn); err != nil {
		return err
	}
	if v.nodeErr != nil {
		return v.nodeErr
	}
	v.next++
	if v.pending++; v.pending == 4096 {
		v.done.Add(v.pending)
		v.pending = 0
	}
	return nil
}

// checkRow checks a row the way that names what is wrong: the leaf in full
// (canonical, with the row's index), then leaf_hash (h is the leaf's),
// then the time and keys columns against the leaf.
func (v *auditRowVerifier) checkRow(idx uint64, leaf, h []byte, f [][]byte) error {
	if err := audit.ScanLeaf(leaf, &v.view); err != nil {
		return &audit.VerifyError{Index: idx, Reason: "leaf is not canonical: " + err.Error(), Err: err}
	}
	if v.view.Index != idx {
		return v.bad(idx, "leaf holds index %d", v.view.Index)
	}
	if !bytes.Equal(h, f[3]) {
		return v.bad(idx, "leaf_hash differs from the hash of the leaf (the leaf or its hash was altered)")
	}
	if t, ok := pgAuditMicros(f[1]); !ok || t != v.view.TimeMicros {
		return v.bad(idx, "column time differs from the leaf")
	}
	if name := v.keysDiffer(f[4]); name != "" {
		return v.bad(idx, "column %s differs from the leaf", name)
	}
	return nil
}

// keysDiffer compares a keys column with the leaf just scanned and returns
// the name of the first field that differs, or "".
func (v *auditRowVerifier) keysDiffer(keys []byte) string {
	eq := bytes.Equal // without escapes a field's raw content is its value
	if v.view.Escaped {
		eq = audit.RawEqualBytes
	}
	fields := v.view.Keys()
	for i, raw := range fields {
		seg := keys
		if i < len(fields)-1 {
			end := bytes.IndexByte(keys, audit.KeySeparator)
			if end < 0 {
				return audit.KeyNames[i]
			}
			seg, keys = keys[:end], keys[end+1:]
		}
		if !eq(raw, seg) {
			return audit.KeyNames[i]
		}
	}
	return ""
}

// visit checks each completed level-8 subtree against its stored hash.
func (v *auditRowVerifier) visit(id compact.NodeID, h []byte) {
	if v.nodeErr == nil {
		v.nodeErr = checkAuditNode(v.plan, id, h)
	}
}

// checkAuditNode checks a recomputed level-8 subtree hash against the stored
// one (other levels pass).
func checkAuditNode(plan *auditVerifyPlan, id compact.NodeID, h []byte) error {
	if id.Level != auditNodeLevel {
		return nil
	}
	stored, ok := plan.nodes[id.Index]
	if ok && bytes.Equal(stored, h) {
		return nil
	}
	b, e := id.Coverage()
	why := "the stored hash of this subtree differs from the recomputed one: an entry or the stored hash was altered"
	if !ok {
		why = "the stored hash of this subtree is missing"
	}
	return &audit.VerifyError{Index: b, End: e, Reason: why}
}

func (v *auditRowVerifier) flushProgress() {
	v.done.Add(v.pending)
	v.pending = 0
}

// finishAuditVerify joins the runs (consecutive idx ranges, the first from
// 0) in order with the verifier core (audit.Joiner, which checks the signed
// roots) and checks what needs the rows before: time_hwm and lag across
// runs, subtrees spanning two runs, and the stored tree head. A run that stopped at a bad row ends the walk; the
// error reported is the one with the lowest index among those found up to
// there.
func finishAuditVerify(plan *auditVerifyPlan, runs []*auditRowVerifier, errs []error) (uint64, []byte, error) {
	join := audit.NewJoiner()
	hwm := int64(-1 << 63)
	var maxLag int64
	var first *audit.VerifyError
	note := func(err error) error {
		var ve *audit.VerifyError
		if !errors.As(err, &ve) {
			return err // not about an entry: a database error
		}
		if first == nil || ve.Index < first.Index {
			first = ve
		}
		return nil
	}
	for k, r := range runs {
		if r.next > r.begin { // the run has rows
			if want := max(hwm, r.firstTime); r.firstHwm != want {
				if err := note(r.bad(r.begin, "column time_hwm differs from the running maximum of time")); err != nil {
					return 0, nil, err
				}
			}
			if r.begin > 0 {
				maxLag = max(maxLag, hwm-r.firstTime)
			}
			maxLag = max(maxLag, r.maxLag)
			hwm = r.hwm
		}
		// Subtrees that span two runs are completed by the merge.
		var nodeErr error
		err := join.Join(r.run, func(id compact.NodeID, h []byte) {
			if nodeErr == nil {
				nodeErr = checkAuditNode(plan, id, h)
			}
		})
		if err := note(err); err != nil {
			return 0, nil, err
		}
		if nodeErr != nil {
			_ = note(nodeErr)
		}
		if errs[k] != nil {
			if err := note(errs[k]); err != nil {
				return 0, nil, err
			}
		}
		if first != nil {
			return 0, nil, first
		}
	}
	n := join.Size()
	prev := join.Verified()
	if n < plan.size {
		return 0, nil, &audit.VerifyError{Index: n, Reason: fmt.Sprintf("missing: %d rows, the tree head says %d", n, plan.size)}
	}
	if n > plan.size {
		return 0, nil, &audit.VerifyError{Index: plan.size, Reason: fmt.Sprintf("%d rows beyond the tree head's size %d", n-plan.size, plan.size)}
	}
	root := join.Root()
	if !bytes.Equal(root, plan.head.root) || !bytes.Equal(bytes.Join(join.State(), nil), plan.head.state) {
		mismatch := &audit.MismatchError{Err: audit.ErrRootMismatch, What: fmt.Sprintf("root of tree size %d", n),
			Expected: plan.head.root, Computed: root}
		if prev == n { // every entry is under a verified signed root
			return 0, nil, fmt.Errorf("audit verify: the stored tree head was altered: %w", mismatch)
		}
		return 0, nil, &audit.VerifyError{Index: prev, End: n, Err: mismatch,
			Reason: "the stored tree head differs from the recomputed tree: an entry after the last checkpoint, or the head, was altered"}
	}
	if maxLag > plan.head.maxLagMicros {
		return 0, nil, fmt.Errorf("audit verify: audit_tree.max_lag_us is %d, the entries need %d (the explorer would miss entries)",
			plan.head.maxLagMicros, maxLag)
	}
	return n, root, nil
}

// CosignGrace is how long a fresh checkpoint may go without its witness
// quorum before VerifyAuditPolicy fails on it; until then the latest
// checkpoint that has the quorum stands in for it (witnesses cosign within
// moments, but a verify can start between the signature and the
// cosignature).
const CosignGrace = 15 * time.Second

// VerifyAuditPolicy is VerifyAuditKeys that also requires the witness
// quorum of p (SPEC §2 `audit verify --policy`): the latest checkpoint (or,
// within CosignGrace of its signing, the latest one with the quorum) must
// carry valid cosignatures of at least p's quorum, be signed by one of
// keys, and be a prefix of the verified tree. A log that was forked, or cut
// back and re-signed by the operator alone, has no such checkpoint. Errors
// of the quorum wrap audit.ErrNoQuorum.
func (rp *AuditReports) VerifyAuditPolicy(ctx context.Context, keys []audit.PublicKey, p *audit.Policy, progress func(done, total uint64)) (uint64, []byte, error) {
	tree := rp.db.AuditTree()
	note, cpSize, err := tree.CosignedCheckpoint(ctx, 0)
	if broker.IsNotFound(err) {
		return 0, nil, fmt.Errorf("%w: no checkpoint published yet", audit.ErrNoQuorum)
	}
	if err != nil {
		return 0, nil, err
	}
	if qerr := p.CheckQuorum([]byte(note)); qerr != nil {
		age, aerr := tree.LatestCheckpointAge(ctx)
		if aerr != nil || age > CosignGrace {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, qerr)
		}
		if note, cpSize, err = tree.CosignedCheckpoint(ctx, max(p.Quorum, 1)); err != nil {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, qerr)
		}
		if err := p.CheckQuorum([]byte(note)); err != nil {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, err)
		}
	}
	cp, err := verifyNoteWithAnyKey([]byte(note), keys)
	if err != nil {
		return 0, nil, err
	}
	size, root, err := rp.VerifyAuditKeys(ctx, keys, progress)
	if err != nil {
		return 0, nil, err
	}
	// The tree just verified must extend the cosigned checkpoint. The proof
	// comes from the database, but it is checked against the recomputed
	// root, so it cannot lie.
	if cp.Size > size {
		return 0, nil, fmt.Errorf("%w: the cosigned checkpoint has size %d, the log only %d", audit.ErrInconsistent, cp.Size, size)
	}
	proof, err := tree.ConsistencyProof(ctx, cp.Size, size)
	if err != nil {
		return 0, nil, err
	}
	if err := proof.Verify(cp.Root, root); err != nil {
		return 0, nil, fmt.Errorf("the cosigned checkpoint of size %d: %w", cp.Size, err)
	}
	return size, root, nil
}

// verifyNoteWithAnyKey verifies a checkpoint note with the first of keys
// that signed it.
func verifyNoteWithAnyKey(note []byte, keys []audit.PublicKey) (audit.Checkpoint, error) {
	err := errors.New("no signing key to verify with")
	for _, k := range keys {
		var cp audit.Checkpoint
		if cp, err = k.VerifyCheckpoint(note); err == nil {
			return cp, nil
		}
	}
	return audit.Checkpoint{}, err
}
