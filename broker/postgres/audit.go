package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/transparency-dev/merkle/compact"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// The audit log store (SPEC §6). Writers append entries to audit_pending:
// inside the caller's transaction when ctx carries one, so the entry commits
// or rolls back with the release it records; otherwise through a group
// committer that writes the entries of concurrent callers in one COPY and
// acknowledges each caller only after it committed. A sequencer then moves
// pending entries into the Merkle log (audit_entries) in batches, each one
// transaction under a transaction-scoped advisory lock, so several brokerd
// processes on one database keep one total order and one tree, and a
// crashed process releases the lock with its connection.

var _ broker.AuditAppender = (*DB)(nil)

const (
	// auditLock serialises integration and checkpoint publication.
	auditLock = 0x5349455641554454 // "SIEVAUDT"

	// auditNodeLevel is the lowest level of the subtree hashes kept in
	// audit_nodes: a proof reads at most 2·2^8 leaf hashes plus those.
	auditNodeLevel = 8

	// auditPGEpochMicros is 2000-01-01T00:00:00Z in Unix microseconds, the
	// epoch of PostgreSQL's binary timestamps.
	auditPGEpochMicros = 946684800000000
)

// SQL of the audit store.
const (
	sqlAuditInsertPending = `INSERT INTO audit_pending (decision_id, entry) VALUES ($1, $2)`
	sqlAuditCopyPending   = `COPY audit_pending (decision_id, entry) FROM STDIN (FORMAT binary)`

	sqlAuditLockAudit = `SELECT pg_advisory_xact_lock($1)`
	sqlAuditTreeHead  = `SELECT size, root, state, coalesce(time_hwm, '0001-01-01T00:00:00Z'), max_lag_us, checkpoint_size,
		coalesce(checkpoint_at, '0001-01-01T00:00:00Z') FROM audit_tree WHERE id FOR UPDATE`
	sqlAuditClaimPending = `DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending WHERE id <= $2
		ORDER BY id LIMIT $1) RETURNING id, decision_id, entry`
	sqlAuditMaxPending        = `SELECT coalesce(max(id), 0) FROM audit_pending`
	sqlAuditCopyEntries       = `COPY audit_log (` + auditColumns + `) FROM STDIN (FORMAT binary)`
	sqlAuditExistingDecisions = `SELECT decision_id FROM audit_entries WHERE decision_id = ANY($1)`
	sqlAuditInsertNodes       = `INSERT INTO audit_nodes (level, idx, hash)
		SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`
	sqlAuditUpsertCounts = `INSERT INTO audit_counts (bucket, actor, purpose, outcome, n)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bigint[])
		ON CONFLICT (bucket, actor, purpose, outcome) DO UPDATE SET n = audit_counts.n + EXCLUDED.n`
	sqlAuditUpsertReleased = `INSERT INTO audit_released (actor, field, purpose, n, first_time, last_time)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
		ON CONFLICT (actor, field, purpose) DO UPDATE SET n = audit_released.n + EXCLUDED.n,
			first_time = least(audit_released.first_time, EXCLUDED.first_time),
			last_time = greatest(audit_released.last_time, EXCLUDED.last_time)`
	sqlAuditInsertRejected = `INSERT INTO audit_rejected (id, decision_id, entry, reason)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[])`
	sqlAuditUpdateTree = `UPDATE audit_tree SET size = $1, root = $2, state = $3, time_hwm = $4, max_lag_us = $5,
		updated_at = now() WHERE id`
	sqlAuditInsertCheckpoint = `INSERT INTO audit_checkpoints (size, root, note) VALUES ($1, $2, $3)
		ON CONFLICT (size) DO NOTHING`
	sqlAuditMarkCheckpoint = `UPDATE audit_tree SET checkpoint_size = $1, checkpoint_at = now() WHERE id`
	sqlAuditSequencerPoll  = `SELECT size, checkpoint_size, coalesce(checkpoint_at, '0001-01-01T00:00:00Z'),
		EXISTS (SELECT 1 FROM audit_pending) FROM audit_tree WHERE id`

	sqlAuditLatestCheckpoint = `SELECT note, size FROM audit_checkpoints ORDER BY size DESC LIMIT 1`
	sqlAuditTreeSize         = `SELECT size FROM audit_tree WHERE id`
	sqlAuditReadStoredNodes  = `SELECT n.level, n.idx, n.hash FROM audit_nodes n
		JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx`
	sqlAuditReadLeafHashes = `SELECT e.idx, e.leaf_hash FROM unnest($1::bigint[], $2::bigint[]) AS r(b, e)
		JOIN audit_entries e ON e.idx >= r.b AND e.idx < r.e`
	sqlAuditEntryByIndex    = `SELECT leaf FROM audit_entries WHERE idx = $1`
	sqlAuditEntryByDecision = `SELECT leaf FROM audit_entries WHERE decision_id = $1`
	sqlAuditHwmIndex        = `SELECT idx FROM audit_entries WHERE time_hwm >= $1 ORDER BY time_hwm, idx LIMIT 1`
	sqlAuditMaxLag          = `SELECT max_lag_us FROM audit_tree WHERE id`
	sqlAuditCountsHourly    = `SELECT date_bin($3::bigint * interval '1 microsecond', bucket, $1) AS b, actor, purpose,
		outcome, sum(n)::bigint FROM audit_counts WHERE bucket >= date_trunc('hour', $1::timestamptz) AND bucket < $2
		GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
	sqlAuditReleasedMatrix = `SELECT actor, field, purpose, n, first_time, last_time FROM audit_released
		ORDER BY actor, field, purpose`
	sqlAuditStatus = `SELECT t.size, t.root, t.checkpoint_size, t.checkpoint_at,
		(SELECT count(*) FROM audit_pending), (SELECT count(*) FROM audit_rejected) FROM audit_tree t WHERE t.id`

	// auditColumns are all columns of audit_log in table order: a scan that
	// returns them needs no projection. keys is the entry's filter fields
	// (audit.KeyNames) joined by audit.KeySeparator (migration 0008).
	auditColumns = `idx, time, time_hwm, leaf_hash, keys, leaf`
	nAuditCols   = 6
)

// ---------------------------------------------------------------------------
// Per-handle state

// auditState is what a DB handle keeps for its audit log.
type auditState struct {
	gc   auditGroupCommitter
	wake chan struct{} // signalled after each group commit, for in-process sequencers
}

func (db *DB) auditState() *auditState {
	db.auditOnce.Do(func() { db.auditV = &auditState{wake: make(chan struct{}, 1)} })
	return db.auditV
}

func (st *auditState) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// ---------------------------------------------------------------------------
// Append

// Append durably appends e to the audit log (broker.AuditAppender). With a
// transaction in ctx the entry is written in it, so it commits or rolls back
// with the caller's work; otherwise it is group-committed with the entries
// of concurrent callers, and Append returns after the COMMIT. The entry is
// normalised and its Index ignored (the sequencer assigns it). A missing
// decision id is EInvalid, a decision id appended before is EConflict, and
// any database failure is an error: the caller must not release anything.
func (db *DB) Append(ctx context.Context, e audit.Entry) error {
	e.Index = 0
	leaf, err := e.ValidLeaf()
	if err != nil {
		return broker.Wrap(broker.EInvalid, err, "invalid audit entry")
	}
	if tx, ok := TxFrom(ctx); ok {
		_, err := tx.Exec(ctx, sqlAuditInsertPending, e.DecisionID, leaf)
		return translateAuditAppend(err)
	}
	return db.appendAuditGrouped(ctx, &auditAppendReq{decisionID: e.DecisionID, leaf: leaf, done: make(chan error, 1)})
}

func translateAuditAppend(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return broker.Wrap(broker.EConflict, err, "decision already audited")
	}
	if err := Translate(err); broker.ErrorCode(err) != broker.EInternal {
		return err
	}
	return broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
}

// auditGroupCommitter batches the appends of concurrent callers. It keeps no
// goroutine of its own: an append that finds fewer than auditMaxFlushers
// flushers running starts one, and a flusher exits when the queue is empty.
// Several flushers overlap one batch's COMMIT (fsync) with the next COPY.
type auditGroupCommitter struct {
	mu       sync.Mutex
	queue    []*auditAppendReq
	flushers int
}

type auditAppendReq struct {
	decisionID string
	leaf       []byte
	done       chan error // receives the outcome exactly once
	taken      bool       // in a batch being written (guarded by mu)
}

const (
	auditMaxFlushers   = 3
	auditMaxGroupBatch = 4096
	auditFlushTimeout  = 30 * time.Second
)

func (db *DB) appendAuditGrouped(ctx context.Context, req *auditAppendReq) error {
	st := db.auditState()
	g := &st.gc
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if g.flushers < auditMaxFlushers {
		g.flushers++
		go db.flushAudit(st)
	}
	g.mu.Unlock()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !req.taken {
		if i := slices.Index(g.queue, req); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
		}
		g.mu.Unlock()
		return broker.Wrap(broker.EUnavailable, ctx.Err(), "audit append cancelled")
	}
	g.mu.Unlock()
	// Already being written: its outcome decides (bounded by auditFlushTimeout).
	return <-req.done
}

// DrainAudit waits until every entry handed to the group committer has been
// written (or failed) and no flusher is running, or ctx is done. The
// committer keeps no goroutine when idle, so there is nothing to stop:
// call this in an ordered shutdown after the last Append and before
// closing the pool.
func (db *DB) DrainAudit(ctx context.Context) error {
	g := &db.auditState().gc
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		g.mu.Lock()
		idle := g.flushers == 0 && len(g.queue) == 0
		g.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// flushAudit writes batches until the queue is empty.
func (db *DB) flushAudit(st *auditState) {
	g := &st.gc
	for {
		g.mu.Lock()
		n := min(len(g.queue), auditMaxGroupBatch)
		if n == 0 {
			g.queue = nil
			g.flushers--
			g.mu.Unlock()
			return
		}
		batch := slices.Clone(g.queue[:n])
		for _, r := range batch {
			r.taken = true
		}
		g.queue = g.queue[n:]
		g.mu.Unlock()

		db.writeAuditPending(batch)
		st.signal()
	}
}

// writeAuditPending writes a batch in one COPY (one transaction) and acks each
// request. When a duplicate decision id fails the batch, the rows are
// written one by one so that only the duplicate's caller gets the error.
func (db *DB) writeAuditPending(batch []*auditAppendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), auditFlushTimeout)
	defer cancel()
	buf := binCopyHeader(make([]byte, 0, 64+len(batch)*400))
	for _, r := range batch {
		buf = binCopyTuple(buf, 2)
		buf = binCopyField(buf, []byte(r.decisionID))
		buf = binCopyField(buf, r.leaf)
	}
	buf = binCopyTrailer(buf)
	err := db.auditCopyIn(ctx, sqlAuditCopyPending, buf)
	var pe *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pe) && pe.Code == "23505" {
		for _, r := range batch {
			_, err := db.Pool.Exec(ctx, sqlAuditInsertPending, r.decisionID, r.leaf)
			r.done <- translateAuditAppend(err)
		}
		return
	}
	err = translateAuditAppend(err)
	for _, r := range batch {
		r.done <- err
	}
}

// auditCopyIn runs COPY ... FROM STDIN with the binary data in buf, on the
// transaction in ctx or on a pooled connection (then it commits on its own).
func (db *DB) auditCopyIn(ctx context.Context, sql string, buf []byte) error {
	if tx, ok := TxFrom(ctx); ok {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
		return err
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
	return err
}

// The PostgreSQL binary COPY format: a header, tuples of length-prefixed
// fields, and a trailer.
var binCopySignature = []byte("PGCOPY\n\xff\r\n\x00")

func binCopyHeader(b []byte) []byte {
	b = append(b, binCopySignature...)
	return binary.BigEndian.AppendUint64(b, 0) // flags, header extension length
}

func binCopyTuple(b []byte, fields int) []byte {
	return binary.BigEndian.AppendUint16(b, uint16(fields))
}

func binCopyField(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func binCopyInt64(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func binCopyTime(b []byte, unixMicros int64) []byte {
	return binCopyInt64(b, unixMicros-auditPGEpochMicros)
}

func binCopyTrailer(b []byte) []byte { return binary.BigEndian.AppendUint16(b, 0xffff) }

// binCopyKeys appends e's keys column as a binary COPY field.
func binCopyKeys(b []byte, e *audit.Entry) []byte {
	fields := e.Keys()
	n := len(fields) - 1
	for _, f := range fields {
		n += len(f)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for i, f := range fields {
		if i > 0 {
			b = append(b, audit.KeySeparator)
		}
		b = append(b, f...)
	}
	return b
}

// ---------------------------------------------------------------------------
// Sequencer

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
func (db *DB) IntegrateAudit(ctx context.Context, cfg SequencerConfig) (int, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return 0, broker.Wrap(broker.EInvalid, err, "invalid audit sequencer configuration")
	}
	// Only what is pending now, so that busy appenders cannot keep this
	// call going.
	var upTo int64
	if err := db.Pool.QueryRow(ctx, sqlAuditMaxPending).Scan(&upTo); err != nil {
		return 0, Translate(err)
	}
	total := 0
	for upTo > 0 {
		n, claimed, err := db.integrateAuditBatch(ctx, cfg, false, upTo)
		total += n
		if err != nil {
			return total, err
		}
		if claimed < cfg.BatchSize {
			break
		}
	}
	if _, err := db.PublishCheckpoint(ctx, cfg); err != nil {
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
func (db *DB) integrateAuditBatch(ctx context.Context, cfg SequencerConfig, autoCheckpoint bool, upTo int64) (int, int, error) {
	var integrated, claimed int
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
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
func (db *DB) PublishCheckpoint(ctx context.Context, cfg SequencerConfig) (string, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return "", broker.Wrap(broker.EInvalid, err, "invalid audit sequencer configuration")
	}
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
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
	note, _, err := db.LatestCheckpoint(ctx)
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
func (db *DB) RunAuditSequencer(ctx context.Context, cfg SequencerConfig) error {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return broker.Wrap(broker.EInvalid, err, "invalid audit sequencer configuration")
	}
	report := cfg.OnError
	if report == nil {
		report = func(err error) { slog.Warn("audit sequencer", "err", err) }
	}
	st := db.auditState()
	backoff := time.Duration(0)
	first := true
	for {
		err := db.auditSequencerPass(ctx, cfg, first)
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
func (db *DB) auditSequencerPass(ctx context.Context, cfg SequencerConfig, first bool) error {
	var size, cpSize int64
	var cpAt time.Time
	var pending bool
	if err := db.Pool.QueryRow(ctx, sqlAuditSequencerPoll).Scan(&size, &cpSize, &cpAt, &pending); err != nil {
		return Translate(err)
	}
	if first && size > max(cpSize, 0) {
		if _, err := db.PublishCheckpoint(ctx, cfg); err != nil {
			return err
		}
	}
	for pending {
		_, claimed, err := db.integrateAuditBatch(ctx, cfg, true, math.MaxInt64)
		if err != nil {
			return err
		}
		pending = claimed == cfg.BatchSize
	}
	// Entries integrated less than Interval after the last checkpoint wait
	// for the next pass; this publishes them once Interval has passed.
	if err := db.Pool.QueryRow(ctx, sqlAuditSequencerPoll).Scan(&size, &cpSize, &cpAt, &pending); err != nil {
		return Translate(err)
	}
	if size > cpSize && time.Since(cpAt) >= cfg.Interval {
		if _, err := db.PublishCheckpoint(ctx, cfg); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Reads

// LatestCheckpoint returns the latest signed checkpoint note and its tree
// size; ENotFound before the first checkpoint.
func (db *DB) LatestCheckpoint(ctx context.Context) (note string, size uint64, err error) {
	var s int64
	if err := db.q(ctx).QueryRow(ctx, sqlAuditLatestCheckpoint).Scan(&note, &s); err != nil {
		return "", 0, Translate(err)
	}
	return note, uint64(s), nil
}

// AuditStatus is the state of the log, for the dashboard and readiness.
type AuditStatus struct {
	Size           uint64     // entries in the tree
	Root           []byte     // its root
	CheckpointSize uint64     // entries covered by the latest checkpoint
	CheckpointAt   *time.Time // when it was signed; nil before the first
	Pending        int64      // appended, not yet integrated
	Rejected       int64      // pending entries the sequencer set aside
}

// AuditStatus returns the state of the log.
func (db *DB) AuditStatus(ctx context.Context) (AuditStatus, error) {
	var s AuditStatus
	var size, cpSize int64
	err := db.q(ctx).QueryRow(ctx, sqlAuditStatus).Scan(&size, &s.Root, &cpSize, &s.CheckpointAt, &s.Pending, &s.Rejected)
	if err != nil {
		return AuditStatus{}, Translate(err)
	}
	s.Size = uint64(size)
	s.CheckpointSize = uint64(max(cpSize, 0))
	return s, nil
}

func (db *DB) auditTreeSize(ctx context.Context) (uint64, error) {
	var size int64
	if err := db.q(ctx).QueryRow(ctx, sqlAuditTreeSize).Scan(&size); err != nil {
		return 0, Translate(err)
	}
	return uint64(size), nil
}

// InclusionProof returns the proof that entry index is in the tree of the
// given size (at most the current size). Bad ranges are EInvalid.
func (db *DB) InclusionProof(ctx context.Context, index, size uint64) (audit.InclusionProof, error) {
	cur, err := db.auditTreeSize(ctx)
	if err != nil {
		return audit.InclusionProof{}, err
	}
	if size == 0 || index >= size || size > cur {
		return audit.InclusionProof{}, broker.Errorf(broker.EInvalid,
			"need index < size <= %d, got index %d and size %d", cur, index, size)
	}
	r := auditNodeReader{q: db.q(ctx)}
	hashes, err := audit.BuildInclusion(ctx, r, index, size)
	if err != nil {
		return audit.InclusionProof{}, Translate(err)
	}
	leaf, err := r.ReadNodes(ctx, []compact.NodeID{compact.NewNodeID(0, index)})
	if err != nil {
		return audit.InclusionProof{}, Translate(err)
	}
	return audit.InclusionProof{Index: index, Size: size, LeafHash: leaf[0], Hashes: hashes}, nil
}

// ConsistencyProof returns the proof that the tree of size from is a prefix
// of the tree of size to (to at most the current size). Bad ranges are
// EInvalid.
func (db *DB) ConsistencyProof(ctx context.Context, from, to uint64) (audit.ConsistencyProof, error) {
	cur, err := db.auditTreeSize(ctx)
	if err != nil {
		return audit.ConsistencyProof{}, err
	}
	if from > to || to > cur {
		return audit.ConsistencyProof{}, broker.Errorf(broker.EInvalid,
			"need from <= to <= %d, got from %d and to %d", cur, from, to)
	}
	hashes, err := audit.BuildConsistency(ctx, auditNodeReader{q: db.q(ctx)}, from, to)
	if err != nil {
		return audit.ConsistencyProof{}, Translate(err)
	}
	return audit.ConsistencyProof{From: from, To: to, Hashes: hashes}, nil
}

// auditNodeReader reads node hashes for proofs: nodes at level 8 and up from
// audit_nodes, lower ones computed from the leaf hashes they cover (at most
// 255 per node), in one round trip.
type auditNodeReader struct{ q querier }

func (s auditNodeReader) ReadNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	var levels []int16
	var idxs []int64
	var begins, ends []int64
	for _, id := range ids {
		if id.Level >= auditNodeLevel {
			levels, idxs = append(levels, int16(id.Level)), append(idxs, int64(id.Index))
			continue
		}
		b, e := id.Coverage()
		begins, ends = append(begins, int64(b)), append(ends, int64(e))
	}
	stored := map[compact.NodeID][]byte{}
	leaves := map[uint64][]byte{}
	var q pgx.Batch
	if len(levels) > 0 {
		q.Queue(sqlAuditReadStoredNodes, levels, idxs).Query(func(rows pgx.Rows) error {
			var l int16
			var i int64
			var h []byte
			_, err := pgx.ForEachRow(rows, []any{&l, &i, &h}, func() error {
				stored[compact.NewNodeID(uint(l), uint64(i))] = slices.Clone(h)
				return nil
			})
			return err
		})
	}
	if len(begins) > 0 {
		q.Queue(sqlAuditReadLeafHashes, begins, ends).Query(func(rows pgx.Rows) error {
			var i int64
			var h []byte
			_, err := pgx.ForEachRow(rows, []any{&i, &h}, func() error {
				leaves[uint64(i)] = slices.Clone(h)
				return nil
			})
			return err
		})
	}
	if q.Len() > 0 {
		if err := s.q.SendBatch(ctx, &q).Close(); err != nil {
			return nil, err
		}
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		if id.Level >= auditNodeLevel {
			h, ok := stored[id]
			if !ok {
				return nil, fmt.Errorf("audit: stored node %d/%d missing", id.Level, id.Index)
			}
			out[i] = h
			continue
		}
		b, e := id.Coverage()
		level := make([][]byte, 0, e-b)
		for j := b; j < e; j++ {
			h, ok := leaves[j]
			if !ok {
				return nil, fmt.Errorf("audit: leaf hash %d missing", j)
			}
			level = append(level, h)
		}
		for len(level) > 1 {
			next := level[:0:0]
			for j := 0; j < len(level); j += 2 {
				next = append(next, audit.NodeHash(level[j], level[j+1]))
			}
			level = next
		}
		out[i] = level[0]
	}
	return out, nil
}

// AuditEntry returns the entry at index idx; ENotFound if there is none.
func (db *DB) AuditEntry(ctx context.Context, idx uint64) (audit.Entry, error) {
	return db.auditEntryBy(ctx, sqlAuditEntryByIndex, int64(idx))
}

// AuditEntryByDecision returns the logged entry of a decision; ENotFound
// if it is not (or not yet) in the log.
func (db *DB) AuditEntryByDecision(ctx context.Context, decisionID string) (audit.Entry, error) {
	return db.auditEntryBy(ctx, sqlAuditEntryByDecision, decisionID)
}

func (db *DB) auditEntryBy(ctx context.Context, sql string, arg any) (audit.Entry, error) {
	var leaf []byte
	if err := db.q(ctx).QueryRow(ctx, sql, arg).Scan(&leaf); err != nil {
		return audit.Entry{}, Translate(err)
	}
	e, err := audit.ParseEntry(leaf)
	if err != nil {
		return audit.Entry{}, fmt.Errorf("stored audit leaf: %w", err)
	}
	return e, nil
}

// AuditFilter selects entries. Empty fields do not filter; From is
// inclusive and To exclusive.
type AuditFilter struct {
	Subject string // the subject's audit pseudonym ("sub_…")
	Actor   string // e.g. "retailer:<client id>"
	Purpose string
	Outcome string
	Action  string
	From    time.Time
	To      time.Time
}

// IsZero reports whether f selects every entry.
func (f AuditFilter) IsZero() bool { return f == AuditFilter{} }

// Fields returns the filter as name → value, for export headers.
func (f AuditFilter) Fields() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{"subject": f.Subject, "actor": f.Actor, "purpose": f.Purpose,
		"outcome": f.Outcome, "action": f.Action} {
		if v != "" {
			m[k] = v
		}
	}
	if !f.From.IsZero() {
		m["from"] = f.From.UTC().Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		m["to"] = f.To.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// MaxAuditPage bounds the limit of AuditEntries.
const MaxAuditPage = 1000

// AuditEntries returns a page of entries matching f, newest (highest
// index) first, after the position cursor ("" for the first page), and the
// cursor of the next page ("" after the last). limit ≤ 0 means 50. A bad
// cursor is EInvalid.
func (db *DB) AuditEntries(ctx context.Context, f AuditFilter, cursor string, limit int) ([]audit.Entry, string, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxAuditPage)
	w, err := db.auditWhere(ctx, f)
	if err != nil || w.empty {
		return nil, "", err
	}
	if cursor != "" {
		before, err := decodeAuditCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		w.add("idx < $%d", before)
	}
	sql := "SELECT idx, leaf FROM audit_entries" + w.sql() + fmt.Sprintf(" ORDER BY idx DESC LIMIT %d", limit+1)
	rows, err := db.q(ctx).Query(ctx, sql, w.customPlan()...)
	if err != nil {
		return nil, "", Translate(err)
	}
	var out []audit.Entry
	var lastIdx, idx int64
	var leaf []byte
	more := false
	_, err = pgx.ForEachRow(rows, []any{&idx, &leaf}, func() error {
		if len(out) == limit {
			more = true
			return nil
		}
		e, err := audit.ParseEntry(leaf)
		if err != nil {
			return fmt.Errorf("stored audit leaf %d: %w", idx, err)
		}
		out, lastIdx = append(out, e), idx
		return nil
	})
	if err != nil {
		return nil, "", Translate(err)
	}
	next := ""
	if more {
		next = encodeAuditCursor(lastIdx)
	}
	return out, next, nil
}

func encodeAuditCursor(idx int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a1:" + strconv.FormatInt(idx, 10)))
}

func decodeAuditCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	s, ok := strings.CutPrefix(string(b), "a1:")
	if err != nil || !ok {
		return 0, broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	return n, nil
}

// auditConds is a conjunction of SQL conditions with positional arguments.
type auditConds struct {
	conds []string
	args  []any
	empty bool // provably selects nothing
}

func (w *auditConds) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, fmt.Sprintf(cond, len(w.args)))
}

// customPlan returns the arguments for a query that must be planned with
// their values: the unnamed statement (pgx's describe-cache mode) is never
// given a generic plan, which for these filters would not know whether a
// value is common or rare, nor how wide an idx window is.
func (w *auditConds) customPlan() []any {
	return append([]any{pgx.QueryExecModeCacheDescribe}, w.args...)
}

func (w *auditConds) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// auditWhere turns a filter into conditions. A time range also becomes an
// idx range, which keeps every filtered scan short however old the range:
// time_hwm (the running maximum of time) is monotonic in idx, and no entry
// is older than the time_hwm before it by more than audit_tree.max_lag_us,
// so entries with From <= time < To lie within
// [first idx with time_hwm >= From, first idx with time_hwm >= To + max_lag].
func (db *DB) auditWhere(ctx context.Context, f AuditFilter) (*auditConds, error) {
	w := &auditConds{}
	for _, c := range []struct{ col, v string }{{"subject", f.Subject}, {"actor", f.Actor},
		{"purpose", f.Purpose}, {"outcome", f.Outcome}, {"action", f.Action}} {
		if c.v != "" {
			w.add(c.col+" = $%d", c.v)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, broker.Errorf(broker.EInvalid, "from must be before to")
	}
	q := db.q(ctx)
	if !f.From.IsZero() {
		var lo int64
		err := q.QueryRow(ctx, sqlAuditHwmIndex, f.From).Scan(&lo)
		if errors.Is(err, pgx.ErrNoRows) {
			w.empty = true
			return w, nil
		}
		if err != nil {
			return nil, Translate(err)
		}
		w.add("idx >= $%d", lo)
		w.add("time >= $%d", f.From)
	}
	if !f.To.IsZero() {
		var lag int64
		if err := q.QueryRow(ctx, sqlAuditMaxLag).Scan(&lag); err != nil {
			return nil, Translate(err)
		}
		var hi int64
		err := q.QueryRow(ctx, sqlAuditHwmIndex, f.To.Add(time.Duration(lag)*time.Microsecond)).Scan(&hi)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, Translate(err)
		}
		if err == nil {
			w.add("idx <= $%d", hi)
		}
		w.add("time < $%d", f.To)
	}
	return w, nil
}

// AuditCount is the number of entries of one actor, purpose and outcome in
// one time bucket.
type AuditCount struct {
	Bucket  time.Time // start of the bucket
	Actor   string
	Purpose string
	Outcome string // audit.OutcomeReleased, OutcomeDenied, ...
	Count   int64
}

// AuditCounts counts entries per bucket (starting at from), actor, purpose
// and outcome, over [from, to). Whole-hour buckets are read from counters
// kept at integration, so the range is widened to whole hours (from rounded
// down, to up); shorter buckets are counted exactly from the entries of
// the range.
func (db *DB) AuditCounts(ctx context.Context, from, to time.Time, bucket time.Duration) ([]AuditCount, error) {
	if bucket <= 0 || !from.Before(to) {
		return nil, broker.Errorf(broker.EInvalid, "need a positive bucket and from before to")
	}
	var rows pgx.Rows
	var err error
	if bucket%time.Hour == 0 {
		rows, err = db.q(ctx).Query(ctx, sqlAuditCountsHourly, from.UTC().Truncate(time.Hour), to, bucket.Microseconds())
	} else {
		w, werr := db.auditWhere(ctx, AuditFilter{From: from, To: to})
		if werr != nil || w.empty {
			return nil, werr
		}
		w.args = append(w.args, from, bucket.Microseconds())
		sql := fmt.Sprintf(`SELECT date_bin($%d::bigint * interval '1 microsecond', time, $%d) AS b, actor, purpose,
			outcome, count(*) FROM audit_entries%s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
			len(w.args), len(w.args)-1, w.sql())
		rows, err = db.q(ctx).Query(ctx, sql, w.customPlan()...)
	}
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditCount, error) {
		var c AuditCount
		err := r.Scan(&c.Bucket, &c.Actor, &c.Purpose, &c.Outcome, &c.Count)
		c.Bucket = c.Bucket.UTC()
		return c, err
	})
	return out, Translate(err)
}

// ReleasedCell is one cell of the release matrix: how often a field was
// released to an actor for a purpose, and when first and last.
type ReleasedCell struct {
	Actor   string
	Field   string
	Purpose string
	Count   int64
	First   time.Time
	Last    time.Time
}

// ReleasedMatrix returns what was actually released: actor × field ×
// purpose, from counters kept at integration.
func (db *DB) ReleasedMatrix(ctx context.Context) ([]ReleasedCell, error) {
	rows, err := db.q(ctx).Query(ctx, sqlAuditReleasedMatrix)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReleasedCell, error) {
		var c ReleasedCell
		err := r.Scan(&c.Actor, &c.Field, &c.Purpose, &c.Count, &c.First, &c.Last)
		c.First, c.Last = c.First.UTC(), c.Last.UTC()
		return c, err
	})
	return out, Translate(err)
}

// ---------------------------------------------------------------------------
// Verification

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
func (db *DB) VerifyAudit(ctx context.Context, key audit.PublicKey, progress func(done, total uint64)) (uint64, []byte, error) {
	return db.VerifyAuditKeys(ctx, []audit.PublicKey{key}, progress)
}

// VerifyAuditKeys is VerifyAudit with several trusted keys, for a log whose
// signing key was rotated: every checkpoint checked must be signed by one
// of them.
func (db *DB) VerifyAuditKeys(ctx context.Context, keys []audit.PublicKey, progress func(done, total uint64)) (uint64, []byte, error) {
	if len(keys) == 0 {
		return 0, nil, broker.Errorf(broker.EInvalid, "no key to verify checkpoints with")
	}
	var done, total atomic.Uint64
	stop := startAuditProgress(progress, &done, &total)
	size, root, err := db.verifyAudit(ctx, keys, &done, &total)
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

func (db *DB) verifyAudit(ctx context.Context, keys []audit.PublicKey, done, total *atomic.Uint64) (uint64, []byte, error) {
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
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
			errs[k] = db.auditCopyOutSnapshot(ctxs[k], snapshotID, sql, runs[k].row)
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
	bounds []auditBound      // signed (size, root), increasing
	nodes  map[uint64][]byte // stored level-8 node hashes by index
	latest audit.Checkpoint
}

type auditBound struct {
	size uint64
	root []byte
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
			p.bounds = append(p.bounds, auditBound{cp.Size, cp.Root})
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
// builds their compact range. It is fed the raw fields of binary COPY
// tuples and stops at the first bad row.
type auditRowVerifier struct {
	plan     *auditVerifyPlan
	begin    uint64
	next     uint64
	rng      *audit.Range
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

	snaps     []auditRangeSnap // ranges at the signed sizes this run passes
	nextBound int              // index in plan.bounds of the next signed size ahead
	visitFn   audit.Visitor    // v.visit, bound once (a method value allocates)
	nodeErr   error
}

type auditRangeSnap struct {
	size uint64
	rng  *audit.Range
}

func newAuditRowVerifier(plan *auditVerifyPlan, done *atomic.Uint64, begin uint64) *auditRowVerifier {
	v := &auditRowVerifier{plan: plan, lh: audit.NewLeafHasher(), done: done, begin: begin, next: begin,
		rng: audit.NewRange(begin)}
	v.visitFn = v.visit
	v.nextBound, _ = slices.BinarySearchFunc(plan.bounds, begin+1, func(b auditBound, size uint64) int {
		return cmp.Compare(b.size, size)
	})
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
	if err := v.rng.Append(h, v.visitFn); err != nil {
		return err
	}
	if v.nodeErr != nil {
		return v.nodeErr
	}
	v.next++
	if v.nextBound < len(v.plan.bounds) && v.plan.bounds[v.nextBound].size == v.next {
		v.snaps = append(v.snaps, auditRangeSnap{v.next, v.rng.Clone()})
		v.nextBound++
	}
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
// 0) in order and checks what needs the rows before: time_hwm and lag
// across runs, subtrees spanning two runs, the signed roots, and the
// stored tree head. A run that stopped at a bad row ends the walk; the
// error reported is the one with the lowest index among those found up to
// there.
func finishAuditVerify(plan *auditVerifyPlan, runs []*auditRowVerifier, errs []error) (uint64, []byte, error) {
	tree := audit.NewTree()
	hwm := int64(-1 << 63)
	var maxLag int64
	prev := uint64(0) // the last signed size passed
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
		for _, s := range r.snaps {
			t := tree.Clone()
			if err := t.AppendRange(s.rng, nil); err != nil {
				return 0, nil, err
			}
			if err := checkAuditBound(plan, s.size, t.Root(), prev); err != nil {
				if err := note(err); err != nil {
					return 0, nil, err
				}
				break
			}
			prev = s.size
		}
		// Subtrees that span two runs are completed by the merge.
		var nodeErr error
		err := tree.AppendRange(r.rng, func(id compact.NodeID, h []byte) {
			if nodeErr == nil {
				nodeErr = checkAuditNode(plan, id, h)
			}
		})
		if err != nil {
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
	n := tree.Size()
	if n < plan.size {
		return 0, nil, &audit.VerifyError{Index: n, Reason: fmt.Sprintf("missing: %d rows, the tree head says %d", n, plan.size)}
	}
	if n > plan.size {
		return 0, nil, &audit.VerifyError{Index: plan.size, Reason: fmt.Sprintf("%d rows beyond the tree head's size %d", n-plan.size, plan.size)}
	}
	root := tree.Root()
	if !bytes.Equal(root, plan.head.root) || !bytes.Equal(bytes.Join(tree.State(), nil), plan.head.state) {
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

func checkAuditBound(plan *auditVerifyPlan, size uint64, root []byte, prev uint64) error {
	for _, b := range plan.bounds {
		if b.size == size && !bytes.Equal(b.root, root) {
			return &audit.VerifyError{Index: prev, End: size,
				Reason: fmt.Sprintf("the root of tree size %d differs from the signed checkpoint: an entry in this range was altered", size),
				Err: &audit.MismatchError{Err: audit.ErrRootMismatch, What: fmt.Sprintf("root of tree size %d", size),
					Expected: b.root, Computed: root}}
		}
	}
	return nil
}

// auditCopyOutSnapshot runs a COPY TO on a pooled connection, in a
// transaction that imports the exported snapshot.
func (db *DB) auditCopyOutSnapshot(ctx context.Context, snapshotID, sql string, row func([][]byte) error) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return Translate(err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	// The scan is one cheap pass; compiling it (JIT, which its cost
	// estimate would trigger on a large log) only adds time. Both settings
	// go in one round trip (without arguments, Exec sends a simple query).
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshotID+"'; SET LOCAL jit = off"); err != nil {
		return Translate(err)
	}
	return auditCopyOut(ctx, conn.Conn().PgConn(), sql, row)
}

// auditCopyOut runs a binary COPY TO STDOUT and calls row with the fields of
// each tuple (valid only during the call).
func auditCopyOut(ctx context.Context, pc *pgconn.PgConn, sql string, row func([][]byte) error) error {
	p := &auditCopyParser{row: row}
	if _, err := pc.CopyTo(ctx, p, sql); err != nil {
		if p.err != nil {
			return p.err
		}
		return Translate(err)
	}
	if p.err != nil {
		return p.err
	}
	if !p.trailer {
		return errors.New("audit verify: COPY stream ended without its trailer")
	}
	return nil
}

// auditCopyParser parses a binary COPY stream written to it. PostgreSQL sends a
// tuple per message, so tuples are usually parsed in place; a tuple split
// across writes is assembled in buf.
type auditCopyParser struct {
	row     func([][]byte) error
	buf     []byte
	header  bool
	trailer bool
	fields  [][]byte
	err     error
}

var errAuditCopyFormat = errors.New("audit verify: malformed COPY stream")

func (p *auditCopyParser) Write(b []byte) (int, error) {
	data := b
	if len(p.buf) > 0 {
		p.buf = append(p.buf, b...)
		data = p.buf
	}
	off, err := p.parse(data)
	if err != nil {
		p.err = err
		return 0, err
	}
	rest := data[off:]
	if len(p.buf) > 0 {
		n := copy(p.buf, rest)
		p.buf = p.buf[:n]
	} else {
		p.buf = append(p.buf[:0], rest...)
	}
	return len(b), nil
}

func (p *auditCopyParser) parse(data []byte) (int, error) {
	off := 0
	if !p.header {
		if len(data) < len(binCopySignature)+8 {
			return 0, nil
		}
		if !bytes.Equal(data[:len(binCopySignature)], binCopySignature) {
			return 0, errAuditCopyFormat
		}
		ext := int(binary.BigEndian.Uint32(data[len(binCopySignature)+4:]))
		if len(data) < len(binCopySignature)+8+ext {
			return 0, nil
		}
		off = len(binCopySignature) + 8 + ext
		p.header = true
	}
	for off+2 <= len(data) {
		n := int16(binary.BigEndian.Uint16(data[off:]))
		if n == -1 {
			p.trailer = true
			return off + 2, nil
		}
		if int(n) != nAuditCols || p.trailer {
			return 0, errAuditCopyFormat
		}
		if cap(p.fields) < int(n) {
			p.fields = make([][]byte, n)
		}
		f := p.fields[:n]
		pos := off + 2
		complete := true
		for i := range f {
			if pos+4 > len(data) {
				complete = false
				break
			}
			l := int32(binary.BigEndian.Uint32(data[pos:]))
			pos += 4
			if l < 0 {
				f[i] = nil
				continue
			}
			if pos+int(l) > len(data) {
				complete = false
				break
			}
			f[i] = data[pos : pos+int(l)]
			pos += int(l)
		}
		if !complete {
			break
		}
		if err := p.row(f); err != nil {
			return 0, err
		}
		off = pos
	}
	return off, nil
}

// ---------------------------------------------------------------------------
// Export

// Export formats of ExportAudit.
const (
	ExportJSONL = "jsonl"
	ExportCSV   = "csv"
)

// ExportAudit writes the log to w. Format "jsonl" without a filter is the
// verifiable export (audit.VerifyExport): a header with the latest signed
// checkpoint and up to 1024 earlier ones, then every leaf of that
// checkpoint's tree in index order. With a filter it is the filtered
// variant (audit.ExportFormatFiltered) of the matching leaves. Format
// "csv" is a table for people, with a header row, in index order. The
// export is read in one snapshot; before the first checkpoint a complete
// jsonl export is EConflict. A stored leaf that is not canonical, or missing
// from a complete export, stops the export with an error (run VerifyAudit
// to locate it): an export never papers over damage.
func (db *DB) ExportAudit(ctx context.Context, w io.Writer, f AuditFilter, format string) error {
	if format != ExportJSONL && format != ExportCSV {
		return broker.Errorf(broker.EInvalid, "unknown export format %q (want jsonl or csv)", format)
	}
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	tctx := context.WithValue(ctx, txKey{}, tx)

	var note string
	var cpSize int64
	err = tx.QueryRow(ctx, sqlAuditLatestCheckpoint).Scan(&note, &cpSize)
	if errors.Is(err, pgx.ErrNoRows) {
		if format == ExportJSONL && f.IsZero() {
			return broker.Errorf(broker.EConflict, "no signed checkpoint yet: run `brokerctl audit checkpoint`")
		}
		cpSize = 0
	} else if err != nil {
		return Translate(err)
	}
	wh, err := db.auditWhere(tctx, f)
	if err != nil {
		return err
	}
	if wh.empty {
		wh = &auditConds{conds: []string{"false"}}
	}
	if format == ExportJSONL {
		wh.add("idx < $%d", cpSize)
	}
	sql := "SELECT leaf FROM audit_entries" + wh.sql() + " ORDER BY idx"

	switch format {
	case ExportJSONL:
		h := audit.ExportHeader{Format: audit.ExportFormat, Checkpoint: note}
		if f.IsZero() {
			if h.History, err = auditExportHistory(ctx, tx, cpSize, note); err != nil {
				return err
			}
			// The witnesses' cosignatures travel with the checkpoint, so that
			// the offline verify can check the quorum (--policy).
			if h.Checkpoint, err = withCosignatures(ctx, tx, cpSize, note); err != nil {
				return err
			}
		} else {
			h.Format, h.Filter = audit.ExportFormatFiltered, f.Fields()
		}
		xw, err := audit.NewExportWriter(w, h)
		if err != nil {
			return err
		}
		err = streamAuditLeaves(ctx, tx, sql, wh.customPlan(), xw.WriteLeaf)
		if err != nil {
			return err
		}
		if f.IsZero() && xw.Count() != uint64(cpSize) {
			return fmt.Errorf("audit export: wrote %d entries for a checkpoint of %d", xw.Count(), cpSize)
		}
		return xw.Flush()
	default:
		cw := csv.NewWriter(w)
		cw.Write([]string{"index", "time", "decision_id", "actor", "action", "purpose", "subject", "resource",
			"released", "withheld", "outcome", "reason", "policy_revision"})
		err := streamAuditLeaves(ctx, tx, sql, wh.customPlan(), func(leaf []byte) error {
			e, err := audit.ParseEntry(leaf)
			if err != nil {
				return fmt.Errorf("stored audit leaf: %w", err)
			}
			return cw.Write([]string{strconv.FormatUint(e.Index, 10), e.Time.Format(time.RFC3339Nano),
				csvCell(e.DecisionID), csvCell(e.Actor), csvCell(e.Action), csvCell(e.Purpose), csvCell(e.Subject), csvCell(e.Resource),
				csvCell(strings.Join(e.Released, " ")), csvCell(strings.Join(e.Withheld, " ")), csvCell(e.Outcome),
				csvCell(e.Reason), csvCell(e.PolicyRevision)})
		})
		if err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	}
}

// csvCell defuses spreadsheet formulas: a cell starting with = + - @ or a
// control character is prefixed with a quote.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// auditExportHistory returns up to audit.MaxExportHistory signed checkpoints
// below size, spread evenly, for an export header, whichever log key signed
// them: the offline verify checks them with every key, current and retired
// (`--key` takes several), so history from before a rotation is checked too.
func auditExportHistory(ctx context.Context, tx pgx.Tx, size int64, _ string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT size FROM audit_checkpoints WHERE size < $1 AND size > 0 ORDER BY size`, size)
	if err != nil {
		return nil, Translate(err)
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, Translate(err)
	}
	us := make([]uint64, len(sizes))
	for i, s := range sizes {
		us[i] = uint64(s)
	}
	pick := audit.SelectHistory(us, audit.MaxExportHistory)
	picked := make([]int64, len(pick))
	for i, s := range pick {
		picked[i] = int64(s)
	}
	rows, err = tx.Query(ctx, `SELECT note FROM audit_checkpoints WHERE size = ANY($1) ORDER BY size`, picked)
	if err != nil {
		return nil, Translate(err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return notes, Translate(err)
}

// streamAuditLeaves runs sql (selecting one bytea) and calls fn with each value,
// valid only during the call.
func streamAuditLeaves(ctx context.Context, tx pgx.Tx, sql string, args []any, fn func([]byte) error) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return Translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.RawValues()[0]); err != nil {
			return err
		}
	}
	return Translate(rows.Err())
}
