package commerce_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/seal"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/postgres"
	"github.com/sieve-broker/sieve/policies"
)

// sweepShoppers is how many expired shoppers each benchmark round erases.
const sweepShoppers = 500

// seedExpired creates n shoppers silent for four years, each with a sealed
// identity under their own contact key, as the ingest would.
func seedExpired(b *testing.B, db *postgres.Stores, sealer broker.Sealer, n int) []string {
	b.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		id := broker.NewID("shp")
		idx := make([]byte, 32)
		_, _ = rand.Read(idx)
		if _, _, err := db.Subjects.EnsureSubject(ctx, idx, id); err != nil {
			b.Fatal(err)
		}
		sealed, err := sealer.Seal(ctx, id, broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: id},
			[]byte(fmt.Sprintf(`{"wa_id":"9198%08d","name":"Shopper %d"}`, i, i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.DB.Pool.Exec(ctx, `UPDATE subjects SET sealed_identity = $2, last_interaction_at = now() - interval '4 years'
			WHERE id = $1`, id, sealed); err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// BenchmarkRetentionSweep is the sweeper's rate: shoppers erased per second
// in batches, each a real erasure (crypto-shredding of every category key,
// rows blanked, recipients told, the signed audit entry). Its same-run
// baseline is BenchmarkRetentionDeleteBaseline.
func BenchmarkRetentionSweep(b *testing.B) {
	db := postgres.New(pgtest.New(b))
	kr, err := seal.LoadKeyring(b.TempDir(), true)
	if err != nil {
		b.Fatal(err)
	}
	plain, err := seal.NewSealer(kr, db.DB.SubjectKeys(), seal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(plain.Close)
	pol, err := policies.Default(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	pseudo, _ := broker.NewPseudonymizer(make([]byte, 32))
	shop, err := commerce.New(commerce.Deps{
		// The sweep as it was first measured: recipient notices, no holds.
		Stores: commerce.Stores{Ports: db.Ports().Ports, Notices: db.Notices, Rights: db.Rights},
		Clients: commerce.Clients{Sealer: seal.NewCategorySealer(plain), Vault: plain,
			Releaser: broker.NewReleaser(pol, pseudo, db.DB.Audit()), Partners: db.DB.Partners()}})
	if err != nil {
		b.Fatal(err)
	}
	s := shop.Service
	ret, err := commerce.NewRetention(db.Retention, shop.Rights.Erase, pol.Data().RetentionPeriods(), 100)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	erased := 0
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		seedExpired(b, db, s.Sealer, sweepShoppers)
		b.StartTimer()
		start := time.Now()
		res, err := ret.Sweep(ctx, time.Now())
		spent += time.Since(start)
		if err != nil || res.Erased != sweepShoppers {
			b.Fatalf("sweep erased %d (%v), want %d", res.Erased, err, sweepShoppers)
		}
		erased += res.Erased
	}
	b.ReportMetric(float64(erased)/spent.Seconds(), "shoppers/s")
}

// BenchmarkRetentionDeleteBaseline deletes the same rows as the sweep, in
// batches of the same size, without sealing anything: the identity blanked
// and the key row deleted, by plain SQL. It is what the sweep's crypto,
// notices and audit cost on top of.
func BenchmarkRetentionDeleteBaseline(b *testing.B) {
	db := postgres.New(pgtest.New(b))
	kr, err := seal.LoadKeyring(b.TempDir(), true)
	if err != nil {
		b.Fatal(err)
	}
	plain, err := seal.NewSealer(kr, db.DB.SubjectKeys(), seal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(plain.Close)
	ctx := context.Background()
	deleted := 0
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		ids := seedExpired(b, db, plain, sweepShoppers)
		b.StartTimer()
		start := time.Now()
		for i := 0; i < len(ids); i += 100 {
			batch := ids[i:min(i+100, len(ids))]
			for _, id := range batch {
				if _, err := db.DB.Pool.Exec(ctx, `WITH s AS (UPDATE subjects SET wa_index = NULL, sealed_identity = NULL,
					erased_at = now() WHERE id = $1 AND erased_at IS NULL RETURNING id)
					DELETE FROM subject_keys WHERE subject_id IN (SELECT id FROM s)`, id); err != nil {
					b.Fatal(err)
				}
			}
		}
		spent += time.Since(start)
		deleted += len(ids)
	}
	b.ReportMetric(float64(deleted)/spent.Seconds(), "shoppers/s")
}
