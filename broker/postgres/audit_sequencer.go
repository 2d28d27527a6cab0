package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/transparency-dev/merkle/compact"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// SequencerConfig configures the integration of pending entries and the
// publication of checkpoints.
type SequencerConfig struct {
	// Key signs checkpoints (Ed25519). Required.
	Key ed25519.PrivateKey
	// CoSigners also sign every checkpoint, after Key: the previous log
	// key during a handover, so monitors that pinned it keep verifying.
	CoSigners []ed25519.PrivateKey
	// Origin names the log in checkpoints and is the key's name: the
	// broker's issuer without its scheme (audit.OriginFromIssuer). Required.
	Origin string
	// Interval is the least time between two checkpoints while the log
	// grows; the default 800ms keeps every entry in a checkpoint within a
	// second.
	Interval time.Duration
	// Poll is how often the sequencer looks for entries appended by other
	// processes (its own process wakes it at once). Default 100ms.
	Poll time.Duration
	// BatchSize is the most entries integrated in one transaction. Default 4096.
	BatchSize int
	// OnError receives the errors the sequencer survives (it retries);
	// nil logs them with slog.
	OnError func(error)
}

// SetDefaults fills in the zero fields that have defaults.
func (c *SequencerConfig) SetDefaults() {
	if c.Interval == 0 {
		c.Interval = 800 * time.Millisecond
	}
	if c.Poll == 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.BatchSize == 0 {
		c.BatchSize = 4096
	}
}

// Validate reports every problem of the configuration at once.
func (c SequencerConfig) Validate() error {
	var errs []error
	if len(c.Key) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("audit sequencer: an Ed25519 signing key is required"))
	}
	for _, k := range c.CoSigners {
		if len(k) != ed25519.PrivateKeySize {
			errs = append(errs, errors.New("audit sequencer: a co-signing key is not an Ed25519 key"))
		}
	}
	if c.Origin == "" || strings.ContainsAny(c.Origin, " \t\n+") {
		errs = append(errs, fmt.Errorf("audit sequencer: invalid origin %q", c.Origin))
	}
	if c.Interval < 0 || c.Poll < 0 {
		errs = append(errs, errors.New("audit sequencer: negative interval"))
	}
	if c.BatchSize < 0 || c.BatchSize > 1<<20 {
		errs = append(errs, fmt.Errorf("audit sequencer: batch size %d out of range", c.BatchSize))
	}
	return errors.Join(errs...)
}

// auditHead is the audit_tree row.
type auditHead struct {
	size           int64
	root           []byte
	state          []byte
	timeHwm        time.Time // year 1 before the first entry
	maxLagMicros   int64
	checkpointSize int64 // -1 before the first checkpoint
	checkpointAt   time.Time
}

func (h auditHead) tree() (*audit.Tree, error) {
	if len(h.state)%audit.HashSize != 0 {
		return nil, fmt.Errorf("audit_tree.state has %d bytes", len(h.state))
	}
	hashes := make([][]byte, 0, len(h.state)/audit.HashSize)
	for i := 0; i < len(h.state); i += audit.HashSize {
		hashes = append(hashes, h.state[i:i+audit.HashSize])
	}
	return audit.ResumeTree(uint64(h.size), hashes)
}

func readAuditHead(ctx context.Context, tx pgx.Tx) (auditHead, error) {
	var h auditHead
	err := tx.QueryRow(ctx, sqlAuditTreeHead).Scan(&h.size, &h.root, &h.state, &h.timeHwm, &h.maxLagMicros,
		&h.checkpointSize, &h.checkpointAt)
	return h, err
}

// IntegrateAudit integrates the entries pending when it is called, in
// batches of cfg.BatchSize (each one transaction), then publishes a
// checkpoint if the tree grew past the latest one. It returns the number of
// entries integrated. It is the synchronous form of RunAuditSequencer, for
// tests and `brokerctl audit checkpoint`, and safe to run beside it.
func (lg *AuditLog) IntegrateAudit(ctx context.Context, cfg SequencerConfig) (int, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return 0, broker.Wrap(broker.EInvalid, err, "invalid audit sequencer configuration")
	}
	// Only what is pending now, so that busy appenders cannot keep this
	// call going.
	var upTo int64
	if err := lg.db.Pool.QueryRow(ctx, sqlAuditMaxPending).Scan(&upTo); err != nil {
		return 0, Translate(err)
	}
	total := 0
	for upTo > 0 {
		n, claimed, err := lg.integrateAuditBatch(ctx, cfg, false, upTo)
		total += n
		if err != nil {
			return total, err
		}
		if claimed < cfg.BatchSize {
			break
		}
	}
	if _, err := lg.PublishCheckpoint(ctx, cfg); err != nil {
		return total, err
	}
	return total, nil
}

// auditPendingRow is a claimed audit_pending row.
type auditPendingRow struct {
	id         int64
	decisionID string
	raw        []byte
	entry      audit.Entry
	micros     int64
}

type auditRejectedRow struct {
	auditPendingRow
	reason string
}

// integrateAuditBatch moves up to cfg.BatchSize pending entries into the log in
// one transaction and, when autoCheckpoint is set and cfg.Interval has
// passed since the last checkpoint, signs one in the same transaction. It
// returns the entries integrated and the pending rows claimed (integrated
// or rejected).
func (lg *AuditLog) integrateAuditBatch(ctx context.Context, cfg SequencerConfig, autoCheckpoint bool, upTo int64) (int, int, error) {
	var integrated, claimed int
	err := pgx.BeginFunc(ctx, lg.db.Pool, func(tx pgx.Tx) error {
		integrated, claimed = 0, 0
		if _, err := tx.Exec(ctx, sqlAuditLockAudit, int64(auditLock)); err != nil {
			return err
		}
		head, err := readAuditHead(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := claimAuditPending(ctx, tx, cfg.BatchSize, upTo)
		if err != nil {
			return err
		}
		claimed = len(rows)
		if len(rows) == 0 {
			return nil
		}
		good, rejected := screenAuditPending(rows)
		// A decision id already in the log fails the COPY; find those (rare)
		// only then, under a savepoint, and write the rest.
		b, err := buildAuditBatch(head, good)
		if err != nil {
			return err
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		err = copyAuditEntries(ctx, sp, b)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			good, rejected, err = dropAuditLogged(ctx, tx, good, rejected)
			if err != nil {
				return err
			}
			if b, err = buildAuditBatch(head, good); err != nil {
				return err
			}
			if sp, err = tx.Begin(ctx); err != nil {
				return err
			}
			err = copyAuditEntries(ctx, sp, b)
		}
		if err != nil {
			return err
		}
		if err := sp.Commit(ctx); err != nil {
			return err
		}
		if err := writeAuditSideTables(ctx, tx, b, rejected); err != nil {
			return err
		}
		integrated = len(good)
		if autoCheckpoint && b.size > head.checkpointSize && time.Since(head.checkpointAt) >= cfg.Interval {
			return publishAuditLocked(ctx, tx, cfg, b.size, b.root)
		}
		return nil
	})
	if err != nil {
		return 0, 0, Translate(err)
	}
	return integrated, claimed, nil
}

func claimAuditPending(ctx context.Context, tx pgx.Tx, limit int, upTo int64) ([]auditPendingRow, error) {
	rows, err := tx.Query(ctx, sqlAuditClaimPending, limit, upTo)
	if err != nil {
		return nil, err
	}
	var out []auditPendingRow
	for rows.Next() {
		var r auditPendingRow
		if err := rows.Scan(&r.id, &r.decisionID, &r.raw); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// screenAuditPending parses the claimed rows and sets aside those that cannot
// go into the log (not a canonical entry, invalid, or a decision id twice
// in the batch), so that one bad row never wedges the sequencer. The rest
// is ordered by entry time (then arrival), keeping idx close to time order.
func screenAuditPending(rows []auditPendingRow) (good []auditPendingRow, rejected []auditRejectedRow) {
	seen := make(map[string]bool, len(rows))
	slices.SortFunc(rows, func(a, b auditPendingRow) int { return cmp.Compare(a.id, b.id) })
	for _, r := range rows {
		e, err := audit.ParseEntry(r.raw)
		if err != nil {
			rejected = append(rejected, auditRejectedRow{r, "not a canonical entry"})
			continue
		}
		if err := e.Validate(); err != nil {
			rejected = append(rejected, auditRejectedRow{r, err.Error()})
			continue
		}
		switch {
		case e.Index != 0 || e.DecisionID != r.decisionID:
			rejected = append(rejected, auditRejectedRow{r, "entry does not match its pending row"})
			continue
		case seen[r.decisionID]:
			rejected = append(rejected, auditRejectedRow{r, "decision id appended twice"})
			continue
		}
		seen[r.decisionID] = true
		r.entry = e
		r.micros = e.Time.UnixMicro()
		good = append(good, r)
	}
	slices.SortStableFunc(good, func(a, b auditPendingRow) int { return cmp.Compare(a.micros, b.micros) })
	return good, rejected
}

// dropAuditLogged moves the rows whose decision id is already in the log to the
// rejected set.
func dropAuditLogged(ctx context.Context, tx pgx.Tx, good []auditPendingRow, rejected []auditRejectedRow) ([]auditPendingRow, []auditRejectedRow, error) {
	ids := make([]string, len(good))
	for i, r := range good {
		ids[i] = r.decisionID
	}
	rows, err := tx.Query(ctx, sqlAuditExistingDecisions, ids)
	if err != nil {
		return nil, nil, err
	}
	logged, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, err
	}
	in := make(map[string]bool, len(logged))
	for _, d := range logged {
		in[d] = true
	}
	var keep []auditPendingRow
	for _, r := range good {
		if in[r.decisionID] {
			rejected = append(rejected, auditRejectedRow{r, "decision id already in the log"})
			continue
		}
		keep = append(keep, r)
	}
	return keep, rejected, nil
}

// auditBatch is a set of entries ready to be written, with the tree after them.
type auditBatch struct {
	copyData []byte // audit_entries rows, binary COPY
	n        int
	size     int64
	root     []byte
	state    []byte
	hwm      time.Time
	maxLag   int64

	nodeLevels []int16
	nodeIdx    []int64
	nodeHashes [][]byte

	counts   map[auditCountKey]int64
	released map[auditReleasedKey]*auditReleasedAgg
}

type auditCountKey struct {
	bucket                  int64 // Unix seconds of the hour
	actor, purpose, outcome string
}

type auditReleasedKey struct{ actor, field, purpose string }

type auditReleasedAgg struct {
	n           int64
	first, last int64 // Unix micros
}

// buildAuditBatch assigns indexes to rows after head and computes everything the
// transaction writes: leaves, the tree, new stored nodes and counters.
func buildAuditBatch(head auditHead, rows []auditPendingRow) (*auditBatch, error) {
	tree, err := head.tree()
	if err != nil {
		return nil, err
	}
	b := &auditBatch{
		n:        len(rows),
		hwm:      head.timeHwm,
		maxLag:   head.maxLagMicros,
		counts:   make(map[auditCountKey]int64),
		released: make(map[auditReleasedKey]*auditReleasedAgg),
	}
	hwm := int64(-1 << 63)
	if head.timeHwm.After(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)) {
		hwm = head.timeHwm.UnixMicro()
	}
	visit := func(id compact.NodeID, h []byte) {
		if id.Level >= auditNodeLevel {
			b.nodeLevels = append(b.nodeLevels, int16(id.Level))
			b.nodeIdx = append(b.nodeIdx, int64(id.Index))
			b.nodeHashes = append(b.nodeHashes, h)
		}
	}
	buf := binCopyHeader(make([]byte, 0, 64+len(rows)*600))
	lh := audit.NewLeafHasher()
	var leaf []byte
	for _, r := range rows {
		idx := tree.Size()
		e := r.entry
		// The pending bytes are the canonical entry with index 0: the leaf
		// is the same bytes with the index in its place.
		leaf = append(append(leaf[:0], `{"index":`...), strconv.FormatUint(idx, 10)...)
		leaf = append(leaf, r.raw[len(`{"index":0`):]...)
		h := lh.Sum(make([]byte, 0, audit.HashSize), leaf)
		if err := tree.Append(h, visit); err != nil {
			return nil, err
		}
		if hwm > r.micros {
			b.maxLag = max(b.maxLag, hwm-r.micros)
		} else {
			hwm = r.micros
		}
		buf = binCopyTuple(buf, nAuditCols)
		buf = binCopyInt64(buf, int64(idx))
		buf = binCopyTime(buf, r.micros)
		buf = binCopyTime(buf, hwm)
		buf = binCopyField(buf, h)
		buf = binCopyKeys(buf, &e)
		buf = binCopyField(buf, leaf)

		hour := time.UnixMicro(r.micros).UTC().Truncate(time.Hour).Unix()
		b.counts[auditCountKey{hour, e.Actor, e.Purpose, e.Outcome}]++
		for _, f := range e.Released {
			k := auditReleasedKey{e.Actor, f, e.Purpose}
			a := b.released[k]
			if a == nil {
				a = &auditReleasedAgg{first: r.micros, last: r.micros}
				b.released[k] = a
			}
			a.n++
			a.first, a.last = min(a.first, r.micros), max(a.last, r.micros)
		}
	}
	b.copyData = binCopyTrailer(buf)
	b.size = int64(tree.Size())
	b.root = tree.Root()
	b.state = bytes.Join(tree.State(), nil)
	if len(rows) > 0 {
		b.hwm = time.UnixMicro(hwm).UTC()
	}
	return b, nil
}

func copyAuditEntries(ctx context.Context, tx pgx.Tx, b *auditBatch) error {
	if b.n == 0 {
		return nil
	}
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(b.copyData), sqlAuditCopyEntries)
	return err
}

// writeAuditSideTables writes what goes with the entries: stored nodes,
// counters, rejected rows and the new tree head, in one round trip.
func writeAuditSideTables(ctx context.Context, tx pgx.Tx, b *auditBatch, rejected []auditRejectedRow) error {
	var q pgx.Batch
	if len(b.nodeIdx) > 0 {
		q.Queue(sqlAuditInsertNodes, b.nodeLevels, b.nodeIdx, b.nodeHashes)
	}
	if len(b.counts) > 0 {
		var buckets []time.Time
		var actors, purposes, outcomes []string
		var ns []int64
		for k, n := range b.counts {
			buckets = append(buckets, time.Unix(k.bucket, 0).UTC())
			actors, purposes, outcomes = append(actors, k.actor), append(purposes, k.purpose), append(outcomes, k.outcome)
			ns = append(ns, n)
		}
		q.Queue(sqlAuditUpsertCounts, buckets, actors, purposes, outcomes, ns)
	}
	if len(b.released) > 0 {
		var actors, fields, purposes []string
		var ns []int64
		var firsts, lasts []time.Time
		for k, a := range b.released {
			actors, fields, purposes = append(actors, k.actor), append(fields, k.field), append(purposes, k.purpose)
			ns = append(ns, a.n)
			firsts, lasts = append(firsts, time.UnixMicro(a.first).UTC()), append(lasts, time.UnixMicro(a.last).UTC())
		}
		q.Queue(sqlAuditUpsertReleased, actors, fields, purposes, ns, firsts, lasts)
	}
	if len(rejected) > 0 {
		var ids []int64
		var decisions, reasons []string
		var entries [][]byte
		for _, r := range rejected {
			ids, decisions = append(ids, r.id), append(decisions, r.decisionID)
			entries, reasons = append(entries, r.raw), append(reasons, r.reason)
		}
		q.Queue(sqlAuditInsertRejected, ids, decisions, entries, reasons)
		slog.Warn("audit: pending entries rejected", "count", len(rejected), "first_reason", rejected[0].reason)
	}
	if b.n > 0 {
		q.Queue(sqlAuditUpdateTree, b.size, b.root, b.state, b.hwm, b.maxLag)
	}
	if q.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &q).Close()
}

// PublishCheckpoint signs a checkpoint of the current tree and stores it,
// unless the latest checkpoint already covers the tree. It returns the
// latest checkpoint note afterwards ("" while the log is empty and none
// was ever published).
func (lg *AuditLog) PublishCheckpoint(ctx context.Context, cfg SequencerConfig) (string, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return "", broker.Wrap(broker.EInvalid, err, "invalid audit sequencer configuration")
	}
	err := pgx.BeginFunc(ctx, lg.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlAuditLockAudit, int64(auditLock)); err != nil {
			return err
		}
		head, err := readAuditHead(ctx, tx)
		if err != nil {
			return err
		}
		if head.size == head.checkpointSize {
			return nil
		}
		return publishAuditLocked(ctx, tx, cfg, head.size, head.root)
	})
	if err != nil {
		return "", Translate(err)
	}
	note, _, err := lg.db.AuditTree().LatestCheckpoint(ctx)
	if broker.IsNotFound(err) {
		return "", nil
	}
	return note, err
}

// publishAuditLocked signs and stores the checkpoint of (size, root); the caller
// holds the audit lock.
func publishAuditLocked(ctx context.Context, tx pgx.Tx, cfg SequencerConfig, size int64, root []byte) error {
	note, err := audit.SignCheckpointKeys(append([]ed25519.PrivateKey{cfg.Key}, cfg.CoSigners...), cfg.Origin, uint64(size), root)
	if err != nil {
		return err
	}
	var q pgx.Batch
	q.Queue(sqlAuditInsertCheckpoint, size, root, string(note))
	q.Queue(sqlAuditMarkCheckpoint, size)
	return tx.SendBatch(ctx, &q).Close()
}

// RunAuditSequencer integrates pending entries into the log until ctx is
// done. While the log grows it publishes a checkpoint as soon as
// cfg.Interval has passed since the last one (so with the defaults every
// entry is under a signed checkpoint within about a second), and one at
// start if the tree grew since the last. It wakes when this process
// appends (after a few milliseconds, to gather a batch), and every
// cfg.Poll for the appends of other processes. Any
// number of processes may run it on one database: batches are serialised
// by a transaction-scoped advisory lock, which a crashed process releases
// with its connection. Database errors are reported to cfg.OnError and
// retried with backoff; it returns nil when ctx is done.
func (lg *AuditLog) RunAuditSequencer(ctx context.Context, cfg SequencerConfig) error {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return broker.Wrap(broker.EInvalid, err, "invalid audit sequencer configuration")
	}
	report := cfg.OnError
	if report == nil {
		report = func(err error) { slog.Warn("audit sequencer", "err", err) }
	}
	st := lg.st
	backoff := time.Duration(0)
	first := true
	for {
		err := lg.auditSequencerPass(ctx, cfg, first)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			report(err)
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
		} else {
			first, backoff = false, 0
		}
		wait := cfg.Poll
		if backoff > 0 {
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-st.wake:
			t.Stop()
			time.Sleep(auditWakeCoalesce)
		case <-t.C:
		}
	}
}

// auditWakeCoalesce is how long a woken sequencer waits for more appends
// before integrating, so that a busy broker integrates in batches.
const auditWakeCoalesce = 5 * time.Millisecond

// auditSequencerPass integrates what is pending and publishes a checkpoint when
// one is due.
func (lg *AuditLog) auditSequencerPass(ctx context.Context, cfg SequencerConfig, first bool) error {
	var size, cpSize int64
	var cpAt time.Time
	var pending bool
	if err := lg.db.Pool.QueryRow(ctx, sqlAuditSequencerPoll).Scan(&size, &cpSize, &cpAt, &pending); err != nil {
		return Translate(err)
	}
	if first && size > max(cpSize, 0) {
		if _, err := lg.PublishCheckpoint(ctx, cfg); err != nil {
			return err
		}
	}
	for pending {
		_, claimed, err := lg.integrateAuditBatch(ctx, cfg, true, math.MaxInt64)
		if err != nil {
			return err
		}
		pending = claimed == cfg.BatchSize
	}
	// Entries integrated less than Interval after the last checkpoint wait
	// for the next pass; this publishes them once Interval has passed.
	if err := lg.db.Pool.QueryRow(ctx, sqlAuditSequencerPoll).Scan(&size, &cpSize, &cpAt, &pending); err != nil {
		return Translate(err)
	}
	if size > cpSize && time.Since(cpAt) >= cfg.Interval {
		if _, err := lg.PublishCheckpoint(ctx, cfg); err != nil {
			return err
		}
	}
	return nil
}
