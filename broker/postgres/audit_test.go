package postgres_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// The entries below are synthetic: actors are partner kinds with made-up
// client ids, subjects are pseudonym-shaped counters. No personal data.

var auditBase = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

var (
	auditActors   = []string{"retailer:cli_alpha", "logistics:cli_beta", "analytics:cli_gamma"}
	auditPurposes = []string{"order_fulfilment", "delivery", "analytics"}
	auditOutcomes = []string{audit.OutcomeReleased, audit.OutcomePartial, audit.OutcomeDenied}
)

// auditTestEntry returns the i-th synthetic entry, one millisecond apart.
func auditTestEntry(i int) audit.Entry {
	e := audit.Entry{
		Time:           auditBase.Add(time.Duration(i) * time.Millisecond),
		DecisionID:     fmt.Sprintf("dec_t%07d", i),
		Actor:          auditActors[i%3],
		Action:         "release",
		Purpose:        auditPurposes[(i/3)%3],
		Subject:        fmt.Sprintf("sub_%04d", i%50),
		Resource:       fmt.Sprintf("order:ord_%07d", i),
		Outcome:        auditOutcomes[(i/9)%3],
		PolicyRevision: "rev_test",
	}
	switch e.Outcome {
	case audit.OutcomeReleased:
		e.Released = []string{"delivery.postal_code", "items"}
	case audit.OutcomePartial:
		e.Released = []string{"items"}
		e.Withheld = []string{"customer.phone"}
	default:
		e.Withheld = []string{"customer.phone", "items"}
		e.Reason = "field not allowed for this purpose"
	}
	return e
}

type auditFixture struct {
	db  *postgres.DB
	cfg postgres.SequencerConfig
	key audit.PublicKey
}

func auditTestSigner(t testing.TB) (postgres.SequencerConfig, audit.PublicKey) {
	t.Helper()
	seed := bytes.Repeat([]byte{0x5e}, ed25519.SeedSize)
	k := ed25519.NewKeyFromSeed(seed)
	cfg := postgres.SequencerConfig{Key: k, Origin: "127.0.0.1:8080"}
	return cfg, audit.PublicKey{Name: cfg.Origin, Key: k.Public().(ed25519.PublicKey)}
}

func newAuditFixture(t testing.TB) auditFixture {
	t.Helper()
	cfg, key := auditTestSigner(t)
	return auditFixture{db: pgtest.New(t), cfg: cfg, key: key}
}

// auditAppendRange appends auditTestEntry(i) for i in [from, to) outside any
// transaction, from a few goroutines.
func auditAppendRange(t testing.TB, db *postgres.DB, from, to int) {
	t.Helper()
	ctx := context.Background()
	const workers = 8
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := from + w; i < to; i += workers {
				if err := db.Audit().Append(ctx, auditTestEntry(i)); err != nil {
					errs <- fmt.Errorf("append %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func auditIntegrate(t testing.TB, f auditFixture) int {
	t.Helper()
	n, err := f.db.Audit().IntegrateAudit(context.Background(), f.cfg)
	if err != nil {
		t.Fatalf("IntegrateAudit: %v", err)
	}
	return n
}

func auditVerifyOK(t testing.TB, f auditFixture, wantSize uint64) []byte {
	t.Helper()
	size, root, err := f.db.AuditReports().VerifyAudit(context.Background(), f.key, nil)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if size != wantSize {
		t.Fatalf("VerifyAudit size = %d, want %d", size, wantSize)
	}
	return root
}

func TestAuditAppendIntegrateVerify(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	// The empty log verifies.
	if size, root, err := f.db.AuditReports().VerifyAudit(ctx, f.key, nil); err != nil || size != 0 || !bytes.Equal(root, audit.EmptyRoot()) {
		t.Fatalf("empty log: %d %x %v", size, root, err)
	}
	auditAppendRange(t, f.db, 0, 600)
	if n := auditIntegrate(t, f); n != 600 {
		t.Fatalf("integrated %d, want 600", n)
	}
	root := auditVerifyOK(t, f, 600)

	// The tree agrees with an independent computation over the stored
	// leaves, and every leaf is the canonical entry with its index.
	tree := audit.NewTree()
	seen := map[string]bool{}
	for i := uint64(0); i < 600; i++ {
		e, err := f.db.AuditTree().AuditEntry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if e.Index != i {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		seen[e.DecisionID] = true
		leaf, _ := e.Canonical()
		_ = tree.Append(audit.LeafHash(leaf), nil)
	}
	if len(seen) != 600 || !bytes.Equal(tree.Root(), root) {
		t.Fatalf("%d distinct decisions; root %x, want %x", len(seen), tree.Root(), root)
	}
	// The checkpoint covers the tree and is signed by the key.
	note, size, err := f.db.AuditTree().LatestCheckpoint(ctx)
	if err != nil || size != 600 {
		t.Fatalf("LatestCheckpoint = %d, %v", size, err)
	}
	cp, err := f.key.VerifyCheckpoint([]byte(note))
	if err != nil || cp.Size != 600 || !bytes.Equal(cp.Root, root) || cp.Origin != f.cfg.Origin {
		t.Fatalf("checkpoint %+v: %v", cp, err)
	}
	st, err := f.db.AuditTree().AuditStatus(ctx)
	if err != nil || st.Size != 600 || st.CheckpointSize != 600 || st.Pending != 0 || st.CheckpointAt == nil {
		t.Fatalf("AuditStatus = %+v, %v", st, err)
	}
	// By decision id; an unknown one is not found.
	e, err := f.db.AuditTree().AuditEntryByDecision(ctx, auditTestEntry(123).DecisionID)
	if err != nil || e.Resource != auditTestEntry(123).Resource {
		t.Fatalf("AuditEntryByDecision = %+v, %v", e, err)
	}
	if _, err := f.db.AuditTree().AuditEntryByDecision(ctx, "dec_absent"); !broker.IsNotFound(err) {
		t.Fatalf("absent decision: err = %v", err)
	}
	if _, err := f.db.AuditTree().AuditEntry(ctx, 600); !broker.IsNotFound(err) {
		t.Fatalf("entry beyond the log: err = %v", err)
	}
	// A second pass with nothing pending publishes nothing new.
	if n := auditIntegrate(t, f); n != 0 {
		t.Fatalf("integrated %d on an idle pass", n)
	}
}

func TestAuditAppendInTransaction(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	boom := errors.New("release failed")
	tests := []struct {
		name    string
		fnErr   error
		visible bool
	}{
		{"committed with the release", nil, true},
		{"rolled back with the release", boom, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := auditTestEntry(1000 + i)
			err := f.db.InTx(ctx, func(ctx context.Context) error {
				if err := f.db.Audit().Append(ctx, e); err != nil {
					return err
				}
				return tc.fnErr
			})
			if !errors.Is(err, tc.fnErr) {
				t.Fatalf("InTx = %v", err)
			}
			auditIntegrate(t, f)
			_, err = f.db.AuditTree().AuditEntryByDecision(ctx, e.DecisionID)
			if tc.visible && err != nil {
				t.Fatalf("committed entry missing: %v", err)
			}
			if !tc.visible && !broker.IsNotFound(err) {
				t.Fatalf("rolled-back entry is in the log (err = %v)", err)
			}
		})
	}
	auditVerifyOK(t, f, 1)
}

func TestAuditAppendRejects(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	if err := f.db.Audit().Append(ctx, auditTestEntry(1)); err != nil {
		t.Fatal(err)
	}
	noID := auditTestEntry(2)
	noID.DecisionID = ""
	tests := []struct {
		name  string
		inTx  bool
		entry audit.Entry
		code  string
	}{
		{"missing decision id", false, noID, broker.EInvalid},
		{"missing decision id in a transaction", true, noID, broker.EInvalid},
		{"pending decision appended again", false, auditTestEntry(1), broker.EConflict},
		{"pending decision appended again in a transaction", true, auditTestEntry(1), broker.EConflict},
		{"NUL byte in the subject", false, func() audit.Entry { e := auditTestEntry(3); e.Subject = "sub_\x00"; return e }(), broker.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.inTx {
				err = f.db.InTx(ctx, func(ctx context.Context) error { return f.db.Audit().Append(ctx, tc.entry) })
			} else {
				err = f.db.Audit().Append(ctx, tc.entry)
			}
			if got := broker.ErrorCode(err); got != tc.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.code)
			}
		})
	}
	// A duplicate that reaches the log only after the first was integrated
	// is set aside by the sequencer, which carries on.
	auditIntegrate(t, f)
	if err := f.db.Audit().Append(ctx, auditTestEntry(1)); err != nil {
		t.Fatalf("re-append after integration: %v", err)
	}
	if err := f.db.Audit().Append(ctx, auditTestEntry(4)); err != nil {
		t.Fatal(err)
	}
	if n := auditIntegrate(t, f); n != 1 {
		t.Fatalf("integrated %d, want only the new entry", n)
	}
	st, err := f.db.AuditTree().AuditStatus(ctx)
	if err != nil || st.Rejected != 1 || st.Size != 2 || st.Pending != 0 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	auditVerifyOK(t, f, 2)
}

func TestAuditSequencerSetsAsideBadPendingRows(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	auditAppendRange(t, f.db, 0, 5)
	good, _ := auditTestEntry(5).Canonical()
	bad := []struct{ id, entry string }{
		{"dec_junk", "not json"},
		{"dec_spaced", strings.Replace(string(good), `"index":0`, `"index": 0`, 1)},
		{"dec_mismatch", string(good)}, // the row's decision id is not the entry's
	}
	for _, b := range bad {
		if _, err := f.db.Pool.Exec(ctx, `INSERT INTO audit_pending (decision_id, entry) VALUES ($1, $2)`, b.id, []byte(b.entry)); err != nil {
			t.Fatal(err)
		}
	}
	if n := auditIntegrate(t, f); n != 5 {
		t.Fatalf("integrated %d, want 5", n)
	}
	st, _ := f.db.AuditTree().AuditStatus(ctx)
	if st.Rejected != 3 || st.Pending != 0 {
		t.Fatalf("status = %+v", st)
	}
	auditVerifyOK(t, f, 5)
}

func TestAuditConcurrentAppenders(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	const goroutines, each = 40, 60
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := g*each + i
				var err error
				if n%5 == 0 { // some inside transactions, as releases do
					err = f.db.InTx(ctx, func(ctx context.Context) error { return f.db.Audit().Append(ctx, auditTestEntry(n)) })
				} else {
					err = f.db.Audit().Append(ctx, auditTestEntry(n))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	auditIntegrate(t, f)
	auditVerifyOK(t, f, goroutines*each)
}

func TestAuditDrain(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.db.Audit().Append(ctx, auditTestEntry(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := f.db.Audit().DrainAudit(dctx); err != nil {
		t.Fatalf("DrainAudit: %v", err)
	}
	st, err := f.db.AuditTree().AuditStatus(ctx)
	if err != nil || st.Pending != 50 {
		t.Fatalf("after drain: %+v, %v", st, err)
	}
}

func TestAuditAppendFailsClosed(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	f.db.Pool.Close()
	err := f.db.Audit().Append(ctx, auditTestEntry(1))
	if code := broker.ErrorCode(err); code != broker.EUnavailable {
		t.Fatalf("append on a closed pool: code %q (%v), want unavailable", code, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.db.Audit().Append(cctx, auditTestEntry(2)); err == nil {
		t.Fatal("append with a cancelled context succeeded")
	}
}

// TestAuditTwoProcesses runs two handles with their own pools on one
// database (as two brokerd would), each appending and sequencing at once.
func TestAuditTwoProcesses(t *testing.T) {
	u := pgtest.NewURL(t)
	cfg, key := auditTestSigner(t)
	cfg.Interval = 50 * time.Millisecond
	cfg.Poll = 10 * time.Millisecond
	cfg.BatchSize = 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var dbs []*postgres.DB
	for i := range 2 {
		db, err := postgres.Open(ctx, u, postgres.Options{MaxConns: 8, AppName: fmt.Sprintf("sieve-test-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		dbs = append(dbs, db)
	}
	var seqWG sync.WaitGroup
	for _, db := range dbs {
		seqWG.Add(1)
		go func() {
			defer seqWG.Done()
			c := cfg
			c.OnError = func(err error) { t.Errorf("sequencer: %v", err) }
			if err := db.Audit().RunAuditSequencer(ctx, c); err != nil {
				t.Errorf("RunAuditSequencer: %v", err)
			}
		}()
	}
	const per = 1500
	var wg sync.WaitGroup
	for p, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			auditAppendRange(t, db, p*per, (p+1)*per)
		}()
	}
	wg.Wait()
	// Let the sequencers drain and publish, then stop them.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := dbs[0].AuditTree().AuditStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending == 0 && st.Size == 2*per && st.CheckpointSize == 2*per {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sequencers did not drain: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	seqWG.Wait()

	f := auditFixture{db: dbs[1], cfg: cfg, key: key}
	auditVerifyOK(t, f, 2*per)
	// Every checkpoint either published is consistent with every later one.
	rows, err := dbs[0].Pool.Query(context.Background(), `SELECT note FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(notes) < 2 {
		t.Fatalf("%d checkpoints: %v", len(notes), err)
	}
	var cps []audit.Checkpoint
	for _, n := range notes {
		cp, err := key.VerifyCheckpoint([]byte(n))
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	last := cps[len(cps)-1]
	for _, cp := range cps[:len(cps)-1] {
		p, err := dbs[1].AuditTree().ConsistencyProof(context.Background(), cp.Size, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(cp.Root, last.Root); err != nil {
			t.Fatalf("checkpoint %d is not consistent with %d: %v", cp.Size, last.Size, err)
		}
	}
}

func TestRunAuditSequencerPublishesWithinASecond(t *testing.T) {
	f := newAuditFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.db.Audit().RunAuditSequencer(ctx, f.cfg) }()
	// By design an entry is in a checkpoint within Interval (800ms) plus one
	// integration; the bound leaves room for a loaded test machine.
	const bound = 2500 * time.Millisecond
	for round := range 3 {
		e := auditTestEntry(round)
		start := time.Now()
		if err := f.db.Audit().Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		for {
			_, size, err := f.db.AuditTree().LatestCheckpoint(context.Background())
			if err == nil && size == uint64(round+1) {
				break
			}
			if time.Since(start) > bound {
				t.Fatalf("round %d: no checkpoint of size %d after %v (have %d, %v)", round, round+1, time.Since(start), size, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunAuditSequencer = %v", err)
	}
	bad := f.cfg
	bad.Key = nil
	if err := f.db.Audit().RunAuditSequencer(context.Background(), bad); broker.ErrorCode(err) != broker.EInvalid {
		t.Fatalf("sequencer without a key: %v", err)
	}
}

// auditPopulatedTemplate builds a database holding 1000 entries with
// checkpoints at 300, 600, 900 and 1000, and returns its name; tests clone
// it (CREATE DATABASE … TEMPLATE) to tamper with a copy each.
func auditPopulatedTemplate(t *testing.T) (name string) {
	t.Helper()
	u := pgtest.NewURL(t)
	cfg, key := auditTestSigner(t)
	db, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	f := auditFixture{db: db, cfg: cfg, key: key}
	for _, upto := range []int{300, 600, 900, 1000} {
		prev, _ := f.db.AuditTree().AuditStatus(context.Background())
		auditAppendRange(t, db, int(prev.Size), upto)
		auditIntegrate(t, f)
	}
	auditVerifyOK(t, f, 1000)
	db.Close()
	pu, _ := url.Parse(u)
	return strings.TrimPrefix(pu.Path, "/")
}

func auditCloneDB(t *testing.T, template string) *postgres.DB {
	t.Helper()
	ctx := context.Background()
	u := pgtest.Clone(t, template)
	db, err := postgres.Open(ctx, u, postgres.Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// auditTamper runs statements as an attacker with owner rights: the
// append-only triggers are bypassed.
func auditTamper(t *testing.T, db *postgres.DB, stmts ...string) {
	t.Helper()
	err := db.InTx(context.Background(), func(ctx context.Context) error {
		tx, _ := postgres.TxFrom(ctx)
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// auditSetKey is an SQL assignment to audit_log.keys that sets filter field
// n (1 decision_id, 2 actor, 3 action, 4 purpose, 5 subject, 6 resource, 7
// outcome) to the SQL expression value.
func auditSetKey(n int, value string) string {
	parts := make([]string, 7)
	for i := range parts {
		parts[i] = fmt.Sprintf(`split_part(keys, E'\x1f', %d)`, i+1)
	}
	parts[n-1] = value
	return `keys = concat_ws(E'\x1f', ` + strings.Join(parts, ", ") + `)`
}

// auditKeysForged is an SQL expression: the keys of a row with its decision
// id replaced by dec_forged.
const auditKeysForged = `'dec_forged' || substr(keys, strpos(keys, E'\x1f'))`

// auditReencoded returns SQL literals for the leaf of auditTestEntry(i) altered by
// edit, with its index set to idx, and its leaf hash.
func auditReencoded(i int, idx uint64, edit func(*audit.Entry)) (leaf, hash string) {
	e := auditTestEntry(i)
	e.Index = idx
	edit(&e)
	b, _ := e.Canonical()
	return `'\x` + hex.EncodeToString(b) + `'::bytea`, `'\x` + hex.EncodeToString(audit.LeafHash(b)) + `'::bytea`
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	tpl := auditPopulatedTemplate(t)
	_, key := auditTestSigner(t)
	intruder := func(e *audit.Entry) { e.Actor = "retailer:cli_intruder" }
	tests := []struct {
		name      string
		tamper    func(t *testing.T, db *postgres.DB)
		wantIndex uint64
		wantEnd   uint64
		wantErr   error // instead of a *VerifyError
	}{
		{
			name: "column updated",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_log SET `+auditSetKey(2, `'retailer:cli_intruder'`)+` WHERE idx = 500`)
			},
			wantIndex: 500,
		},
		{
			name: "columns updated in both halves",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_log SET `+auditSetKey(4, `'marketing'`)+` WHERE idx IN (120, 880)`)
			},
			wantIndex: 120,
		},
		{
			// Moving a separator shifts the value between two fields.
			name: "filter field split across two",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_log SET keys = overlay(keys placing E'\x1f' from strpos(keys, ':') for 1)
					WHERE idx = 640 AND split_part(keys, E'\x1f', 2) LIKE '%:%'`)
			},
			wantIndex: 640,
		},
		{
			name: "separator appended to the filter fields",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_log SET keys = keys || E'\x1f' WHERE idx = 641`)
			},
			wantIndex: 641,
		},
		{
			name: "leaf updated, canonical, hash left",
			tamper: func(t *testing.T, db *postgres.DB) {
				leaf, _ := auditReencoded(300, 300, intruder)
				auditTamper(t, db, `UPDATE audit_log SET leaf = `+leaf+` WHERE idx = 300`)
			},
			wantIndex: 300,
		},
		{
			name: "leaf updated, not canonical",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_log SET leaf = overlay(leaf placing '{"index": ' from 1 for 9),
					leaf_hash = sha256('\x00'::bytea || overlay(leaf placing '{"index": ' from 1 for 9)) WHERE idx = 42`)
			},
			wantIndex: 42,
		},
		{
			name: "leaf, hash and columns updated consistently",
			tamper: func(t *testing.T, db *postgres.DB) {
				leaf, hash := auditReencoded(700, 700, intruder)
				auditTamper(t, db, `UPDATE audit_log SET leaf = `+leaf+`, leaf_hash = `+hash+`,
					`+auditSetKey(2, `'retailer:cli_intruder'`)+` WHERE idx = 700`)
			},
			wantIndex: 512, wantEnd: 768, // the stored subtree over 512..767
		},
		{
			name: "leaf, hash, columns and stored subtree updated consistently",
			tamper: func(t *testing.T, db *postgres.DB) {
				leaf, hash := auditReencoded(700, 700, intruder)
				auditTamper(t, db, `UPDATE audit_log SET leaf = `+leaf+`, leaf_hash = `+hash+`,
					`+auditSetKey(2, `'retailer:cli_intruder'`)+` WHERE idx = 700`)
				auditTamper(t, db, `UPDATE audit_nodes SET hash = '\x`+hex.EncodeToString(auditSubtreeHash(t, db, 512, 768))+`'
					WHERE level = 8 AND idx = 2`)
			},
			wantIndex: 600, wantEnd: 900, // only the signed roots at 600 and 900 bound it
		},
		{
			name:      "row deleted",
			tamper:    func(t *testing.T, db *postgres.DB) { auditTamper(t, db, `DELETE FROM audit_log WHERE idx = 250`) },
			wantIndex: 250,
		},
		{
			name:      "last row deleted",
			tamper:    func(t *testing.T, db *postgres.DB) { auditTamper(t, db, `DELETE FROM audit_log WHERE idx = 999`) },
			wantIndex: 999,
		},
		{
			name: "last rows deleted and the tree auditHeadOf rewound",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `DELETE FROM audit_log WHERE idx >= 950`, `UPDATE audit_tree SET size = 950`)
			},
			wantIndex: 950,
		},
		{
			name: "row inserted at the end",
			tamper: func(t *testing.T, db *postgres.DB) {
				leaf, hash := auditReencoded(999, 1000, func(e *audit.Entry) { e.DecisionID = "dec_forged" })
				auditTamper(t, db, `INSERT INTO audit_log SELECT 1000, time, time_hwm, `+hash+`, `+auditKeysForged+`, `+leaf+`
					FROM audit_log WHERE idx = 999`)
			},
			wantIndex: 1000,
		},
		{
			name: "row inserted in the middle",
			tamper: func(t *testing.T, db *postgres.DB) {
				leaf, hash := auditReencoded(400, 400, func(e *audit.Entry) { e.DecisionID = "dec_forged" })
				auditTamper(t, db,
					`UPDATE audit_log SET idx = -idx - 1 WHERE idx >= 400`,
					`UPDATE audit_log SET idx = -idx WHERE idx < 0`,
					`INSERT INTO audit_log SELECT 400, time, time_hwm, `+hash+`, `+auditKeysForged+`, `+leaf+`
					FROM audit_log WHERE idx = 401`)
			},
			wantIndex: 401, // the forged row is self-consistent; the next one holds index 400
		},
		{
			name: "two rows swapped",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_log SET idx = CASE idx WHEN 100 THEN -101 ELSE -100 END WHERE idx IN (100, 101)`,
					`UPDATE audit_log SET idx = -idx WHERE idx < 0`)
			},
			wantIndex: 100,
		},
		{
			name: "time_hwm altered",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_log SET time_hwm = time_hwm + interval '1 day' WHERE idx = 800`)
			},
			wantIndex: 800,
		},
		{
			name: "stored subtree hash altered",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_nodes SET hash = sha256(hash) WHERE level = 8 AND idx = 1`)
			},
			wantIndex: 256, wantEnd: 512,
		},
		{
			name: "checkpoint note altered",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_checkpoints SET note = replace(note, E'\n600\n', E'\n601\n') WHERE size = 600`)
			},
			wantErr: audit.ErrBadSignature,
		},
		{
			name: "tree auditHeadOf root altered",
			tamper: func(t *testing.T, db *postgres.DB) {
				auditTamper(t, db, `UPDATE audit_tree SET root = sha256(root)`)
			},
			wantErr: audit.ErrRootMismatch,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := auditCloneDB(t, tpl)
			tc.tamper(t, db)
			_, _, err := db.AuditReports().VerifyAudit(context.Background(), key, nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *VerifyError", err)
			}
			if ve.Index != tc.wantIndex || ve.End != tc.wantEnd {
				t.Fatalf("VerifyError{Index: %d, End: %d}: %v; want index %d end %d", ve.Index, ve.End, err, tc.wantIndex, tc.wantEnd)
			}
		})
	}
	t.Run("another key", func(t *testing.T) {
		db := auditCloneDB(t, tpl)
		other := audit.PublicKey{Key: make(ed25519.PublicKey, ed25519.PublicKeySize)}
		if _, _, err := db.AuditReports().VerifyAudit(context.Background(), other, nil); !errors.Is(err, audit.ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("untouched copy verifies", func(t *testing.T) {
		db := auditCloneDB(t, tpl)
		var calls int
		size, _, err := db.AuditReports().VerifyAudit(context.Background(), key, func(done, total uint64) {
			calls++
			if done > total || total != 1000 {
				t.Errorf("progress %d/%d", done, total)
			}
		})
		if err != nil || size != 1000 || calls == 0 {
			t.Fatalf("VerifyAudit = %d, %v (%d progress calls)", size, err, calls)
		}
	})
	// Rows stored out of idx order (space reused after a rolled-back
	// append) are no sign of tampering: verification reads in idx order.
	t.Run("same rows stored out of order verify", func(t *testing.T) {
		db := auditCloneDB(t, tpl)
		size0, root0, err := db.AuditReports().VerifyAudit(context.Background(), key, nil)
		if err != nil {
			t.Fatal(err)
		}
		auditTamper(t, db,
			`CREATE TEMP TABLE shuffled AS SELECT * FROM audit_log ORDER BY (idx * 7919 + 1) % 1000, idx`,
			`DELETE FROM audit_log`,
			`INSERT INTO audit_log SELECT * FROM shuffled`)
		var first int64
		if err := db.Pool.QueryRow(context.Background(), `SELECT idx FROM audit_log LIMIT 1`).Scan(&first); err != nil || first == 0 {
			t.Fatalf("the first stored row has idx %d (%v): the rows were not reordered", first, err)
		}
		size, root, err := db.AuditReports().VerifyAudit(context.Background(), key, nil)
		if err != nil || size != size0 || !bytes.Equal(root, root0) {
			t.Fatalf("VerifyAudit = %d, %x, %v; want %d, %x", size, root, err, size0, root0)
		}
	})
}

// auditSubtreeHash recomputes the hash over the stored leaf hashes [b, e).
func auditSubtreeHash(t *testing.T, db *postgres.DB, b, e int) []byte {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT leaf_hash FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, b, e)
	if err != nil {
		t.Fatal(err)
	}
	level, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(level) != e-b {
		t.Fatalf("%d leaf hashes: %v", len(level), err)
	}
	for len(level) > 1 {
		var next [][]byte
		for i := 0; i < len(level); i += 2 {
			next = append(next, audit.NodeHash(level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}

// auditHTTPServer serves the store's proofs and checkpoint the way the broker's
// HTTP API does, with the shared response types.
func auditHTTPServer(t *testing.T, db *postgres.DB) *httptest.Server {
	t.Helper()
	num := func(r *http.Request, k string) uint64 {
		n, _ := strconv.ParseUint(r.URL.Query().Get(k), 10, 64)
		return n
	}
	writeJSON := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, `{"error":{"code":"invalid","message":"bad range"}}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(audit.PathCheckpoint, func(w http.ResponseWriter, r *http.Request) {
		note, _, err := db.AuditTree().LatestCheckpoint(r.Context())
		if err != nil {
			http.Error(w, "none", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(note))
	})
	mux.HandleFunc(audit.PathInclusionProof, func(w http.ResponseWriter, r *http.Request) {
		p, err := db.AuditTree().InclusionProof(r.Context(), num(r, "index"), num(r, "size"))
		writeJSON(w, p, err)
	})
	mux.HandleFunc(audit.PathConsistencyProof, func(w http.ResponseWriter, r *http.Request) {
		p, err := db.AuditTree().ConsistencyProof(r.Context(), num(r, "from"), num(r, "to"))
		writeJSON(w, p, err)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAuditProofsFromTheStore(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	auditAppendRange(t, f.db, 0, 700)
	auditIntegrate(t, f)
	srv := auditHTTPServer(t, f.db)
	c := audit.NewClient(srv.URL, f.key)
	cp1, err := c.Checkpoint(ctx)
	if err != nil || cp1.Size != 700 {
		t.Fatalf("Checkpoint = %+v, %v", cp1, err)
	}
	for _, i := range []uint64{0, 1, 255, 256, 257, 511, 512, 699} {
		e, err := f.db.AuditTree().AuditEntry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.VerifyEntry(ctx, e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	// The log grows; the client proves the new checkpoint extends the old.
	auditAppendRange(t, f.db, 700, 1100)
	auditIntegrate(t, f)
	cp2, err := c.Checkpoint(ctx)
	if err != nil || cp2.Size != 1100 {
		t.Fatalf("second checkpoint = %+v, %v", cp2, err)
	}
	// Proofs for older tree sizes verify against roots recomputed here.
	tree := audit.NewTree()
	roots := map[uint64][]byte{0: tree.Root()}
	hashes := make([][]byte, 1100)
	for i := uint64(0); i < 1100; i++ {
		e, _ := f.db.AuditTree().AuditEntry(ctx, i)
		leaf, _ := e.Canonical()
		hashes[i] = audit.LeafHash(leaf)
		_ = tree.Append(hashes[i], nil)
		roots[i+1] = tree.Root()
	}
	for _, c := range []struct{ i, size uint64 }{{0, 1}, {3, 4}, {255, 256}, {300, 513}, {1023, 1024}, {1099, 1100}, {17, 1025}} {
		p, err := f.db.AuditTree().InclusionProof(ctx, c.i, c.size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.LeafHash, hashes[c.i]) {
			t.Fatalf("inclusion %d/%d: leaf hash differs", c.i, c.size)
		}
		if err := p.Verify(roots[c.size]); err != nil {
			t.Fatalf("inclusion %d/%d: %v", c.i, c.size, err)
		}
	}
	for _, c := range []struct{ from, to uint64 }{{0, 5}, {1, 1100}, {256, 512}, {300, 1024}, {700, 1100}, {1100, 1100}} {
		p, err := f.db.AuditTree().ConsistencyProof(ctx, c.from, c.to)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(roots[c.from], roots[c.to]); err != nil {
			t.Fatalf("consistency %d→%d: %v", c.from, c.to, err)
		}
	}
	bad := []struct {
		name string
		err  error
	}{
		{"inclusion index = size", func() error { _, err := f.db.AuditTree().InclusionProof(ctx, 5, 5); return err }()},
		{"inclusion beyond the tree", func() error { _, err := f.db.AuditTree().InclusionProof(ctx, 5, 1101); return err }()},
		{"inclusion in size 0", func() error { _, err := f.db.AuditTree().InclusionProof(ctx, 0, 0); return err }()},
		{"consistency from > to", func() error { _, err := f.db.AuditTree().ConsistencyProof(ctx, 9, 8); return err }()},
		{"consistency beyond the tree", func() error { _, err := f.db.AuditTree().ConsistencyProof(ctx, 8, 1101); return err }()},
	}
	for _, b := range bad {
		if broker.ErrorCode(b.err) != broker.EInvalid {
			t.Errorf("%s: err = %v, want invalid", b.name, b.err)
		}
	}
}

func TestAuditEntriesFilters(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	const n = 900
	auditAppendRange(t, f.db, 0, n)
	// A late entry: its time is long before the entries integrated before
	// it, as when a slow transaction commits late.
	late := auditTestEntry(n)
	late.Time = auditBase.Add(-time.Hour)
	if err := f.db.Audit().Append(ctx, late); err != nil {
		t.Fatal(err)
	}
	auditIntegrate(t, f)
	all := make([]audit.Entry, 0, n+1)
	for i := uint64(0); i <= n; i++ {
		e, err := f.db.AuditTree().AuditEntry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	at := func(ms int) time.Time { return auditBase.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name  string
		f     broker.AuditFilter
		match func(audit.Entry) bool
	}{
		{"none", broker.AuditFilter{}, func(audit.Entry) bool { return true }},
		{"subject", broker.AuditFilter{Subject: "sub_0007"}, func(e audit.Entry) bool { return e.Subject == "sub_0007" }},
		{"actor", broker.AuditFilter{Actor: auditActors[1]}, func(e audit.Entry) bool { return e.Actor == auditActors[1] }},
		{"purpose", broker.AuditFilter{Purpose: "delivery"}, func(e audit.Entry) bool { return e.Purpose == "delivery" }},
		{"outcome", broker.AuditFilter{Outcome: audit.OutcomeDenied}, func(e audit.Entry) bool { return e.Outcome == audit.OutcomeDenied }},
		{"actor and purpose", broker.AuditFilter{Actor: auditActors[0], Purpose: "analytics"},
			func(e audit.Entry) bool { return e.Actor == auditActors[0] && e.Purpose == "analytics" }},
		{"actor and outcome", broker.AuditFilter{Actor: auditActors[2], Outcome: audit.OutcomePartial},
			func(e audit.Entry) bool { return e.Actor == auditActors[2] && e.Outcome == audit.OutcomePartial }},
		{"time range", broker.AuditFilter{From: at(100), To: at(400)},
			func(e audit.Entry) bool { return !e.Time.Before(at(100)) && e.Time.Before(at(400)) }},
		{"time range holding the late entry", broker.AuditFilter{From: auditBase.Add(-2 * time.Hour), To: at(5)},
			func(e audit.Entry) bool { return !e.Time.Before(auditBase.Add(-2*time.Hour)) && e.Time.Before(at(5)) }},
		{"from only", broker.AuditFilter{From: at(850)}, func(e audit.Entry) bool { return !e.Time.Before(at(850)) }},
		{"to only", broker.AuditFilter{To: at(3)}, func(e audit.Entry) bool { return e.Time.Before(at(3)) }},
		{"subject and time", broker.AuditFilter{Subject: "sub_0003", From: at(200), To: at(700)},
			func(e audit.Entry) bool {
				return e.Subject == "sub_0003" && !e.Time.Before(at(200)) && e.Time.Before(at(700))
			}},
		{"range after the log", broker.AuditFilter{From: at(5000)}, func(audit.Entry) bool { return false }},
		{"no match", broker.AuditFilter{Actor: "retailer:cli_nobody"}, func(audit.Entry) bool { return false }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []uint64
			for i := len(all) - 1; i >= 0; i-- {
				if tc.match(all[i]) {
					want = append(want, all[i].Index)
				}
			}
			var got []uint64
			cursor := ""
			for page := 0; ; page++ {
				es, next, err := f.db.AuditReports().AuditEntries(ctx, tc.f, cursor, 37)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range es {
					got = append(got, e.Index)
				}
				if next == "" {
					break
				}
				if len(es) != 37 || page > 100 {
					t.Fatalf("page %d has %d entries and a next cursor", page, len(es))
				}
				cursor = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %d entries %v…, want %d %v…", len(got), auditHeadOf(got), len(want), auditHeadOf(want))
			}
		})
	}
	for _, c := range []string{"nope", "YTE6LTE", "!!"} {
		if _, _, err := f.db.AuditReports().AuditEntries(ctx, broker.AuditFilter{}, c, 10); broker.ErrorCode(err) != broker.EInvalid {
			t.Errorf("cursor %q: err = %v, want invalid", c, err)
		}
	}
	if _, _, err := f.db.AuditReports().AuditEntries(ctx, broker.AuditFilter{From: at(5), To: at(5)}, "", 10); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("empty time range: err = %v, want invalid", err)
	}
}

func auditHeadOf(s []uint64) []uint64 { return s[:min(len(s), 5)] }

func TestAuditCountsAndReleasedMatrix(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	const n = 540
	auditAppendRange(t, f.db, 0, n)
	// Entries an hour later land in the next bucket.
	for i := n; i < n+9; i++ {
		e := auditTestEntry(i)
		e.Time = e.Time.Add(time.Hour)
		if err := f.db.Audit().Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	auditIntegrate(t, f)
	type key struct {
		bucket                  time.Time
		actor, purpose, outcome string
	}
	wantCounts := func(bucket time.Duration) map[key]int64 {
		m := map[key]int64{}
		for i := 0; i < n+9; i++ {
			e := auditTestEntry(i)
			if i >= n {
				e.Time = e.Time.Add(time.Hour)
			}
			start := auditBase.Add(e.Time.Sub(auditBase) / bucket * bucket) // buckets start at from
			m[key{start, e.Actor, e.Purpose, e.Outcome}]++
		}
		return m
	}
	for _, bucket := range []time.Duration{time.Hour, 24 * time.Hour, time.Minute, 100 * time.Millisecond} {
		t.Run(bucket.String(), func(t *testing.T) {
			got, err := f.db.AuditReports().AuditCounts(ctx, auditBase, auditBase.Add(3*time.Hour), bucket)
			if err != nil {
				t.Fatal(err)
			}
			m := map[key]int64{}
			for _, c := range got {
				m[key{c.Bucket, c.Actor, c.Purpose, c.Outcome}] += c.Count
			}
			want := wantCounts(bucket)
			if len(m) != len(want) {
				t.Fatalf("%d cells, want %d", len(m), len(want))
			}
			for k, v := range want {
				if m[k] != v {
					t.Fatalf("%+v: %d, want %d", k, m[k], v)
				}
			}
		})
	}
	if _, err := f.db.AuditReports().AuditCounts(ctx, auditBase, auditBase, time.Hour); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("empty range: %v", err)
	}
	cells, err := f.db.AuditReports().ReleasedMatrix(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type mk struct{ actor, field, purpose string }
	want := map[mk]int64{}
	for i := 0; i < n+9; i++ {
		e := auditTestEntry(i)
		for _, fld := range e.Released {
			want[mk{e.Actor, fld, e.Purpose}]++
		}
	}
	if len(cells) != len(want) {
		t.Fatalf("%d matrix cells, want %d", len(cells), len(want))
	}
	for _, c := range cells {
		if want[mk{c.Actor, c.Field, c.Purpose}] != c.Count || c.First.After(c.Last) {
			t.Fatalf("cell %+v, want count %d", c, want[mk{c.Actor, c.Field, c.Purpose}])
		}
	}
}

func TestAuditExport(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	var empty bytes.Buffer
	if err := f.db.AuditReports().ExportAudit(ctx, &empty, broker.AuditFilter{}, postgres.ExportJSONL); broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("export before any checkpoint: %v", err)
	}
	for _, upto := range []int{100, 250, 400} {
		prev, _ := f.db.AuditTree().AuditStatus(ctx)
		auditAppendRange(t, f.db, int(prev.Size), upto)
		auditIntegrate(t, f)
	}
	// Entries integrated after the last checkpoint are not in the export.
	if err := f.db.Audit().Append(ctx, auditTestEntry(400)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Audit().IntegrateAudit(ctx, f.cfg); err != nil {
		t.Fatal(err)
	}
	_, _ = f.db.Pool.Exec(ctx, `DELETE FROM audit_checkpoints WHERE size = 401`)

	t.Run("jsonl verifies offline", func(t *testing.T) {
		var buf bytes.Buffer
		if err := f.db.AuditReports().ExportAudit(ctx, &buf, broker.AuditFilter{}, postgres.ExportJSONL); err != nil {
			t.Fatal(err)
		}
		size, root, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), f.key, nil)
		if err != nil || size != 400 {
			t.Fatalf("VerifyExport = %d, %v", size, err)
		}
		var hdr audit.ExportHeader
		first, _, _ := bytes.Cut(buf.Bytes(), []byte("\n"))
		if err := json.Unmarshal(first, &hdr); err != nil || len(hdr.History) != 2 {
			t.Fatalf("header %+v: %v", hdr, err)
		}
		_, sizeDB, _ := f.db.AuditTree().LatestCheckpoint(ctx)
		if sizeDB != 400 || len(root) != audit.HashSize {
			t.Fatalf("latest checkpoint %d", sizeDB)
		}
	})
	t.Run("filtered jsonl", func(t *testing.T) {
		var buf bytes.Buffer
		flt := broker.AuditFilter{Actor: auditActors[0], Outcome: audit.OutcomeDenied}
		if err := f.db.AuditReports().ExportAudit(ctx, &buf, flt, postgres.ExportJSONL); err != nil {
			t.Fatal(err)
		}
		if _, _, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), f.key, nil); !errors.Is(err, audit.ErrFilteredExport) {
			t.Fatalf("VerifyExport of a filtered export: %v", err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		want := 0
		for i := 0; i < 400; i++ {
			if e := auditTestEntry(i); e.Actor == flt.Actor && e.Outcome == flt.Outcome {
				want++
			}
		}
		if len(lines)-1 != want || want == 0 {
			t.Fatalf("%d lines, want %d entries", len(lines)-1, want)
		}
		for _, l := range lines[1:] {
			e, err := audit.ParseEntry([]byte(l))
			if err != nil || e.Actor != flt.Actor || e.Outcome != flt.Outcome {
				t.Fatalf("line %q: %v", l, err)
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		var buf bytes.Buffer
		flt := broker.AuditFilter{Subject: "sub_0001"}
		if err := f.db.AuditReports().ExportAudit(ctx, &buf, flt, postgres.ExportCSV); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1+8 || recs[0][0] != "index" || recs[0][6] != "subject" { // 1, 51, …, 351
			t.Fatalf("%d records, header %v", len(recs), recs[0])
		}
		for _, r := range recs[1:] {
			if r[6] != "sub_0001" {
				t.Fatalf("row %v", r)
			}
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		if err := f.db.AuditReports().ExportAudit(ctx, &bytes.Buffer{}, broker.AuditFilter{}, "xml"); broker.ErrorCode(err) != broker.EInvalid {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAuditCSVDefusesFormulas(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	e := auditTestEntry(0)
	e.Reason = "=HYPERLINK(\"x\")"
	if err := f.db.Audit().Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	auditIntegrate(t, f)
	var buf bytes.Buffer
	if err := f.db.AuditReports().ExportAudit(ctx, &buf, broker.AuditFilter{}, postgres.ExportCSV); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("%v %v", recs, err)
	}
	if got := recs[1][11]; got != "'"+e.Reason {
		t.Fatalf("reason cell = %q", got)
	}
}

// TestAuditKeyRotation checks a log whose checkpoints were signed by two
// keys in turn: verification needs both, online and offline (the export
// carries the history of both keys, so the offline verify checks it all).
func TestAuditKeyRotation(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	auditAppendRange(t, f.db, 0, 300)
	auditIntegrate(t, f)
	rotated := f.cfg
	rotated.Key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x77}, ed25519.SeedSize))
	newKey := audit.PublicKey{Name: rotated.Origin, Key: rotated.Key.Public().(ed25519.PublicKey)}
	for _, upto := range []int{600, 900} {
		prev, _ := f.db.AuditTree().AuditStatus(ctx)
		auditAppendRange(t, f.db, int(prev.Size), upto)
		if _, err := f.db.Audit().IntegrateAudit(ctx, rotated); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.db.AuditReports().VerifyAudit(ctx, newKey, nil); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("VerifyAudit with the new key only: %v, want ErrBadSignature", err)
	}
	if size, _, err := f.db.AuditReports().VerifyAuditKeys(ctx, []audit.PublicKey{newKey, f.key}, nil); err != nil || size != 900 {
		t.Fatalf("VerifyAuditKeys with both keys = %d, %v", size, err)
	}
	var buf bytes.Buffer
	if err := f.db.AuditReports().ExportAudit(ctx, &buf, broker.AuditFilter{}, postgres.ExportJSONL); err != nil {
		t.Fatal(err)
	}
	export := buf.Bytes()
	if _, _, err := audit.VerifyExport(bytes.NewReader(export), newKey, nil); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("VerifyExport with the new key only: %v, want ErrBadSignature (history the old key signed)", err)
	}
	if size, _, err := audit.VerifyExport(bytes.NewReader(export), audit.KeySet{newKey, f.key}, nil); err != nil || size != 900 {
		t.Fatalf("VerifyExport with both keys = %d, %v", size, err)
	}
	if _, _, err := f.db.AuditReports().VerifyAuditKeys(ctx, nil, nil); broker.ErrorCode(err) != broker.EInvalid {
		t.Fatalf("no keys: %v", err)
	}
}

// Rows whose filter fields need escapes in the leaf (quotes, backslashes,
// HTML characters, controls, non-ASCII) are checked by the full scan: the
// log verifies, and an edit of such a row's keys is named.
func TestAuditVerifyEscapedFields(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	odd := []func(*audit.Entry){
		func(e *audit.Entry) { e.Resource = `order:"quoted"` },
		func(e *audit.Entry) { e.Actor = `retailer:back\slash` },
		func(e *audit.Entry) { e.Subject = "sub_<b>&amp;</b>" },
		func(e *audit.Entry) { e.Purpose = "line\nbreak\ttab" },
		func(e *audit.Entry) { e.Resource = "order:café\u2028" },
	}
	for i := range 40 {
		e := auditTestEntry(i)
		if i%4 == 1 {
			odd[(i/4)%len(odd)](&e)
		}
		if err := f.db.Audit().Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := auditIntegrate(t, f); n != 40 {
		t.Fatalf("integrated %d, want 40", n)
	}
	auditVerifyOK(t, f, 40)
	for i := range 40 {
		e, err := f.db.AuditTree().AuditEntry(ctx, uint64(i))
		if err != nil || (i%4 == 1) == (e.Resource == auditTestEntry(i).Resource && e.Actor == auditTestEntry(i).Actor &&
			e.Subject == auditTestEntry(i).Subject && e.Purpose == auditTestEntry(i).Purpose) {
			t.Fatalf("entry %d: %+v, %v", i, e, err)
		}
	}
	// The row with the quoted resource gets another one.
	auditTamper(t, f.db, `UPDATE audit_log SET `+auditSetKey(6, `'order:"other"'`)+` WHERE split_part(keys, E'\x1f', 6) = 'order:"quoted"'`)
	_, _, err := f.db.AuditReports().VerifyAudit(ctx, f.key, nil)
	var ve *audit.VerifyError
	if !errors.As(err, &ve) || !strings.Contains(ve.Reason, "column resource differs") {
		t.Fatalf("VerifyAudit after editing an escaped field: %v", err)
	}
}
