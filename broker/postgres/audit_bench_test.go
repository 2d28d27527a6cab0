package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/migrations"
)

// The audit benchmarks of `make bench` (SPEC §8). Each prints its figure
// with b.ReportMetric:
//
//	BenchmarkAuditAppend      durable entries/s, many concurrent appenders
//	BenchmarkPgbenchBaseline  the same rows inserted by the real pgbench in
//	                          100-row transactions on the same server: rows/s,
//	                          and the ratio to BenchmarkAuditAppend
//	BenchmarkAuditVerify      VerifyAudit entries/s over the benchmark log
//	BenchmarkAuditVerifyFloor the same rows streamed the same way, each leaf
//	                          only hashed into the tree: entries/s
//	BenchmarkAuditVerifyExport VerifyExport entries/s over an export of it
//	                          (the offline check: a file, no database)
//	BenchmarkPgbenchRead      the real pgbench reading the same log's entries
//	                          (1,000-row idx ranges, 2 clients, as text):
//	                          rows/s, and the ratio to BenchmarkAuditVerify
//	BenchmarkAuditExplorer    ms per filtered page over 1,000,000 entries
//
// Verify and explorer share one log of 1,000,000 entries in a database
// kept under the test cluster between runs (named after the migrations, so
// a schema change builds a new one): the first run fills it through the
// real integration path, in about a minute, and later runs reuse it.
// SIEVE_BENCH_AUDIT_REBUILD=1 forces a rebuild.

const auditBenchLogSize = 1_000_000

// auditBenchEntry is a synthetic entry of a busy broker: 20 partners, 6
// purposes, 50,000 shoppers (as pseudonyms) over 30 days.
func auditBenchEntry(i int) audit.Entry {
	kinds := []string{"retailer", "logistics", "payments", "analytics"}
	purposes := []string{"order_fulfilment", "delivery", "payment", "support", "analytics", "marketing"}
	outcomes := []string{audit.OutcomeReleased, audit.OutcomeReleased, audit.OutcomePartial, audit.OutcomeDenied}
	p := (i * 7919) % 20
	e := audit.Entry{
		Time:           time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 2592 * time.Millisecond),
		DecisionID:     fmt.Sprintf("dec_b%09d", i),
		Actor:          fmt.Sprintf("%s:cli_%02d", kinds[p%4], p),
		Action:         "release",
		Purpose:        purposes[(i/20)%6],
		Subject:        fmt.Sprintf("sub_%022d", (i*104729)%50000),
		Resource:       fmt.Sprintf("order:ord_%012d", i/3),
		Outcome:        outcomes[(i/7)%4],
		PolicyRevision: "rev_2026_09_01_a1b2c3",
	}
	if e.Purpose == "marketing" && i%97 != 0 { // without an opt-in, marketing is denied
		e.Outcome = audit.OutcomeDenied
	}
	switch e.Outcome {
	case audit.OutcomeDenied:
		e.Withheld = []string{"customer.phone", "delivery.address"}
		e.Reason = "field not allowed for this purpose"
	case audit.OutcomePartial:
		e.Released = []string{"delivery.postal_code", "items", "total"}
		e.Withheld = []string{"customer.phone", "customer.profile_name"}
	default:
		e.Released = []string{"delivery.address", "delivery.postal_code", "delivery.slot", "items", "total"}
		e.Withheld = []string{"customer.phone", "customer.profile_name", "chat"}
	}
	return e
}

var auditAppendRate atomic.Uint64 // entries/s of the last BenchmarkAuditAppend, for the ratio

func BenchmarkAuditAppend(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	// Entries are built ahead (the caller's work, not the appender's); each
	// append gets a fresh decision id.
	templates := make([]audit.Entry, 4096)
	for i := range templates {
		templates[i] = auditBenchEntry(i)
	}
	var seq atomic.Int64
	b.SetParallelism(128) // 256 appenders on 2 cores: releases in flight at once
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			e := templates[n%int64(len(templates))]
			e.DecisionID = "dec_a" + strconv.FormatInt(n, 10)
			if err := db.Audit().Append(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	rate := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()
	auditAppendRate.Store(uint64(rate))
	b.ReportMetric(rate, "entries/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPgbenchBaseline runs pgbench (from scripts/pg.sh bindir) on the
// same server: 16 clients inserting the same audit_pending rows in
// 100-row transactions (one INSERT … SELECT of 100 rows between BEGIN and
// COMMIT), for 5 seconds per b.N.
func BenchmarkPgbenchBaseline(b *testing.B) {
	bin := auditPgBinary(b, "pgbench")
	u := pgtest.NewURL(b)
	leaf, err := auditBenchEntry(0).Canonical()
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(b.TempDir(), "audit_append.sql")
	body := fmt.Sprintf("BEGIN;\nINSERT INTO audit_pending (decision_id, entry) SELECT 'dec_' || gen_random_uuid(), '\\x%s'::bytea FROM generate_series(1, 100);\nCOMMIT;\n", hex.EncodeToString(leaf))
	if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	rate := auditPgbenchRows(b, bin, script, u, 16, 100)
	b.ReportMetric(rate, "rows/s")
	if a := auditAppendRate.Load(); a > 0 {
		b.ReportMetric(float64(a)/rate, "append/pgbench")
	}
	b.ReportMetric(0, "ns/op")
}

// auditPgbenchRows runs pgbench b.N times for 5 seconds with script
// against url from clients clients, and returns the mean rows/s: its tps
// times rowsPerTx. It stops the benchmark timer.
func auditPgbenchRows(b *testing.B, bin, script, url string, clients int, rowsPerTx float64) float64 {
	b.Helper()
	var rows float64
	for range b.N {
		out, err := exec.Command(bin, "-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", "5", "-f", script, url).CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			b.Fatalf("pgbench printed no tps:\n%s", out)
		}
		tps, _ := strconv.ParseFloat(string(m[1]), 64)
		rows += tps * rowsPerTx
	}
	b.StopTimer()
	return rows / float64(b.N)
}

// auditPgBinary finds a PostgreSQL program through scripts/pg.sh bindir.
func auditPgBinary(b *testing.B, name string) string {
	b.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "pg.sh"), "bindir").Output()
	if err != nil {
		b.Fatalf("scripts/pg.sh bindir: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), name)
}

// auditEntriesRate times b.N calls of run, each returning the entries it
// went through, and reports entries/s (returned too) and entries per call.
func auditEntriesRate(b *testing.B, run func() (uint64, error)) float64 {
	b.ResetTimer()
	start := time.Now()
	var n uint64
	for range b.N {
		size, err := run()
		if err != nil {
			b.Fatal(err)
		}
		n += size
	}
	b.StopTimer()
	rate := float64(n) / time.Since(start).Seconds()
	b.ReportMetric(rate, "entries/s")
	b.ReportMetric(float64(n)/float64(b.N), "entries")
	return rate
}

func BenchmarkAuditVerify(b *testing.B) {
	db, _, key := auditBenchLog(b)
	ctx := context.Background()
	rate := auditEntriesRate(b, func() (uint64, error) {
		size, _, err := db.AuditReports().VerifyAudit(ctx, key, nil)
		return size, err
	})
	auditVerifyRate.Store(uint64(rate))
}

var auditVerifyRate atomic.Uint64 // entries/s of the last BenchmarkAuditVerify, for the ratio

// BenchmarkAuditVerifyFloor is verify's floor: the log streamed from the
// database exactly as BenchmarkAuditVerify streams it, each leaf only
// hashed into the tree (no canonical scan, no column, subtree or root
// check). No verification from this database can go faster.
func BenchmarkAuditVerifyFloor(b *testing.B) {
	db, _, _ := auditBenchLog(b)
	ctx := context.Background()
	auditEntriesRate(b, func() (uint64, error) { return postgres.AuditReadHashFloor(ctx, db) })
}

// BenchmarkAuditVerifyExport is the offline check an auditor runs with no
// database (brokerctl audit verify --file F --key PUB): the benchmark log
// is exported once to a file (brokerctl audit export), then each b.N
// verifies that file against the signed checkpoint in its header.
func BenchmarkAuditVerifyExport(b *testing.B) {
	db, _, key := auditBenchLog(b)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := db.AuditReports().ExportAudit(ctx, f, broker.AuditFilter{}, postgres.ExportJSONL); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	auditEntriesRate(b, func() (uint64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		size, _, err := audit.VerifyExport(f, key, nil)
		return size, err
	})
}

// BenchmarkPgbenchRead is verify's baseline: the real pgbench on the same
// server reading the entries of the benchmark log, with nothing checked.
// Each transaction reads 1,000 consecutive entries from a random place;
// 2 clients, as verify streams 2 ranges at once on this machine. pgbench
// reads results as text, so the leaf comes as its JSON text (the same
// bytes) rather than hex; 5 seconds per b.N.
func BenchmarkPgbenchRead(b *testing.B) {
	bin := auditPgBinary(b, "pgbench")
	db, _, _ := auditBenchLog(b)
	st, err := db.AuditTree().AuditStatus(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	last := uint64(0) // the highest start of a 1,000-row range
	if st.Size > 1000 {
		last = st.Size - 1000
	}
	script := filepath.Join(b.TempDir(), "audit_read.sql")
	body := fmt.Sprintf("\\set s random(0, %d)\nSELECT idx, convert_from(leaf, 'UTF8') FROM audit_log WHERE idx >= :s AND idx < :s + 1000;\n",
		last)
	if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	rate := auditPgbenchRows(b, bin, script, auditBenchLogOnce.url, 2, 1000)
	b.ReportMetric(rate, "rows/s")
	if v := auditVerifyRate.Load(); v > 0 {
		b.ReportMetric(float64(v)/rate, "verify/pgbench")
	}
	b.ReportMetric(0, "ns/op")
}

func BenchmarkAuditExplorer(b *testing.B) {
	db, _, _ := auditBenchLog(b)
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d) }
	queries := []struct {
		name string
		f    broker.AuditFilter
	}{
		{"all", broker.AuditFilter{}},
		{"subject", broker.AuditFilter{Subject: auditBenchEntry(4242).Subject}},
		{"partner", broker.AuditFilter{Actor: auditBenchEntry(17).Actor}},
		{"purpose", broker.AuditFilter{Purpose: "marketing"}},
		{"outcome", broker.AuditFilter{Outcome: audit.OutcomeDenied}},
		{"recent day", broker.AuditFilter{From: day(29), To: day(30)}},
		{"old day", broker.AuditFilter{From: day(2), To: day(3)}},
		{"first half", broker.AuditFilter{From: day(0), To: day(15)}},
		{"partner+purpose", broker.AuditFilter{Actor: auditBenchEntry(17).Actor, Purpose: "support"}},
		{"partner+outcome", broker.AuditFilter{Actor: auditBenchEntry(17).Actor, Outcome: audit.OutcomeDenied}},
		{"purpose+outcome", broker.AuditFilter{Purpose: "payment", Outcome: audit.OutcomePartial}},
		{"rare purpose+outcome", broker.AuditFilter{Purpose: "marketing", Outcome: audit.OutcomeReleased}},
		{"rare partner+purpose+outcome", broker.AuditFilter{Actor: auditBenchEntry(17).Actor, Purpose: "marketing",
			Outcome: audit.OutcomePartial}},
		{"subject+old week", broker.AuditFilter{Subject: auditBenchEntry(4242).Subject, From: day(1), To: day(8)}},
		{"partner+old day", broker.AuditFilter{Actor: auditBenchEntry(17).Actor, From: day(3), To: day(4)}},
		{"outcome+old day", broker.AuditFilter{Outcome: audit.OutcomeDenied, From: day(5), To: day(6)}},
	}
	// Warm up (plans, cache), then time each query with a second page.
	for _, q := range queries {
		if _, _, err := db.AuditReports().AuditEntries(ctx, q.f, "", 50); err != nil {
			b.Fatalf("%s: %v", q.name, err)
		}
	}
	worst := make([]time.Duration, len(queries))
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		for i, q := range queries {
			t0 := time.Now()
			page, next, err := db.AuditReports().AuditEntries(ctx, q.f, "", 50)
			if err != nil {
				b.Fatal(err)
			}
			if next != "" {
				if _, _, err = db.AuditReports().AuditEntries(ctx, q.f, next, 50); err != nil {
					b.Fatal(err)
				}
			}
			d := time.Since(t0)
			if next != "" {
				d /= 2
			}
			if len(page) == 0 {
				b.Fatalf("%s: empty page", q.name)
			}
			worst[i] = max(worst[i], d)
			total += d
		}
	}
	b.StopTimer()
	slowest := slices.Index(worst, slices.Max(worst))
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N*len(queries)), "ms/page")
	b.ReportMetric(float64(worst[slowest].Microseconds())/1000, "worst-ms/page")
	if testing.Verbose() {
		for i, q := range queries {
			b.Logf("%-18s worst %6.2f ms", q.name, float64(worst[i].Microseconds())/1000)
		}
	}
	b.ReportMetric(0, "ns/op")
}

var auditBenchLogOnce struct {
	sync.Mutex
	url string
}

// auditBenchLog opens the kept benchmark log, building it when absent.
func auditBenchLog(b *testing.B) (*postgres.DB, postgres.SequencerConfig, audit.PublicKey) {
	b.Helper()
	cfg, key := auditTestSigner(b)
	cfg.BatchSize = 32768
	auditBenchLogOnce.Lock()
	defer auditBenchLogOnce.Unlock()
	ctx := context.Background()
	if auditBenchLogOnce.url == "" {
		u, err := ensureAuditBenchLog(b, cfg)
		if err != nil {
			b.Fatal(err)
		}
		auditBenchLogOnce.url = u
	}
	db, err := postgres.Open(ctx, auditBenchLogOnce.url, postgres.Options{MaxConns: 8, AppName: "sieve-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	return db, cfg, key
}

func ensureAuditBenchLog(b *testing.B, cfg postgres.SequencerConfig) (string, error) {
	ctx := context.Background()
	admin := pgtest.URL(b)
	h := sha256.New()
	names, _ := fs.Glob(migrations.FS, "*.sql")
	slices.Sort(names)
	for _, n := range names {
		data, _ := fs.ReadFile(migrations.FS, n)
		h.Write(data)
	}
	name := "sieve_bench_audit_" + hex.EncodeToString(h.Sum(nil))[:12]
	pu, _ := url.Parse(admin)
	pu.Path = "/" + name
	u := pu.String()

	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists && os.Getenv("SIEVE_BENCH_AUDIT_REBUILD") == "" {
		db, err := postgres.Open(ctx, u, postgres.Options{})
		if err == nil {
			st, err := db.AuditTree().AuditStatus(ctx)
			db.Close()
			if err == nil && st.Size == auditBenchLogSize && st.CheckpointSize == auditBenchLogSize && st.Pending == 0 {
				return u, nil
			}
		}
	}
	b.Logf("building the benchmark audit log %s (%d entries)", name, auditBenchLogSize)
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	db, err := postgres.Open(ctx, u, postgres.Options{MaxConns: 8})
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return "", err
	}
	start := time.Now()
	// Pending rows by COPY (what the group committer writes), then the
	// real integration path, in chunks so that checkpoints get spread out.
	const chunk = 100_000
	for from := 0; from < auditBenchLogSize; from += chunk {
		rows := make([][]any, 0, chunk)
		for i := from; i < from+chunk; i++ {
			e := auditBenchEntry(i)
			leaf, err := e.Canonical()
			if err != nil {
				return "", err
			}
			rows = append(rows, []any{e.DecisionID, leaf})
		}
		if _, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"audit_pending"}, []string{"decision_id", "entry"}, pgx.CopyFromRows(rows)); err != nil {
			return "", err
		}
		if _, err := db.Audit().IntegrateAudit(ctx, cfg); err != nil {
			return "", err
		}
	}
	if _, err := db.Pool.Exec(ctx, "VACUUM ANALYZE audit_log"); err != nil {
		return "", err
	}
	b.Logf("built in %v", time.Since(start).Round(time.Second))
	return u, nil
}
