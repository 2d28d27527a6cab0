package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/audit/witness"
	"github.com/sieve-broker/sieve/audit/witness/witnesstest"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// The witness benchmarks of `make bench` (SPEC §8, §6):
//
//	BenchmarkAuditAppendWitness/without  entries/s appended and integrated
//	                                     by a running sequencer
//	BenchmarkAuditAppendWitness/with     the same with a Cosigner submitting
//	                                     every checkpoint to a real
//	                                     litewitness; with/without is the
//	                                     same-run ratio (cosigning must not
//	                                     lower it)
//	BenchmarkAuditVerifyPolicy           VerifyAuditPolicy entries/s over the
//	                                     benchmark log (its checkpoint
//	                                     cosigned by a litewitness), and the
//	                                     ratio to BenchmarkAuditVerify

var auditAppendNoWitnessRate atomic.Uint64

func BenchmarkAuditAppendWitness(b *testing.B) {
	for _, with := range []bool{false, true} {
		name := "without"
		if with {
			name = "with"
		}
		b.Run(name, func(b *testing.B) { benchAppendSequenced(b, with) })
	}
}

func benchAppendSequenced(b *testing.B, withWitness bool) {
	db := pgtest.New(b)
	cfg, key := auditTestSigner(b)
	cfg.OnError = func(err error) { b.Error(err) }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { db.Audit().RunAuditSequencer(ctx, cfg) }) //nolint:errcheck
	if withWitness {
		lw := witnesstest.Start(b, "witness.bench/a", cfg.Origin)
		lw.AddLogKey(b, key.String())
		p, err := audit.ParsePolicy([]byte(lw.PolicyLine("a") + "quorum 1\n"))
		if err != nil {
			b.Fatal(err)
		}
		c := &witness.Cosigner{Store: db.AuditTree(), Policy: p, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		wg.Go(func() { c.Run(ctx) }) //nolint:errcheck
	}
	templates := make([]audit.Entry, 4096)
	for i := range templates {
		templates[i] = auditBenchEntry(i)
	}
	var seq atomic.Int64
	b.SetParallelism(128)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			e := templates[n%int64(len(templates))]
			e.DecisionID = "dec_w" + strconv.FormatInt(n, 10)
			if err := db.Audit().Append(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// Appended is not the end: wait until the sequencer integrated all.
	for {
		st, err := db.AuditTree().AuditStatus(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Pending == 0 && st.Size >= uint64(b.N) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	rate := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(rate, "entries/s")
	b.ReportMetric(0, "ns/op")
	if !withWitness {
		auditAppendNoWitnessRate.Store(uint64(rate))
		return
	}
	if base := auditAppendNoWitnessRate.Load(); base > 0 {
		b.ReportMetric(rate/float64(base), "with/without")
	}
}

func BenchmarkAuditVerifyPolicy(b *testing.B) {
	db, cfg, key := auditBenchLog(b)
	ctx := context.Background()
	lw := witnesstest.Start(b, "witness.bench/v", cfg.Origin)
	lw.AddLogKey(b, key.String())
	label := fmt.Sprintf("bench%d", time.Now().UnixNano()) // the bench log outlives runs
	p, err := audit.ParsePolicy([]byte(lw.PolicyLine(label) + "quorum 1\n"))
	if err != nil {
		b.Fatal(err)
	}
	note, size, err := db.AuditTree().LatestCheckpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	line, err := witness.AddCheckpoint(ctx, &http.Client{Timeout: 10 * time.Second}, p.Witnesses[0], 0, nil, []byte(note))
	if err != nil {
		b.Fatal(err)
	}
	if err := db.AuditTree().AddCosignature(ctx, size, label, line); err != nil {
		b.Fatal(err)
	}
	rate := auditEntriesRate(b, func() (uint64, error) {
		size, _, err := db.AuditReports().VerifyAuditPolicy(ctx, []audit.PublicKey{key}, p, nil)
		return size, err
	})
	if v := auditVerifyRate.Load(); v > 0 {
		b.ReportMetric(rate/float64(v), "policy/plain")
	}
}
