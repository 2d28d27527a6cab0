package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce"
)

// BenchmarkBreachOpen is `brokerctl breach open` over the 1,000,000-entry
// benchmark log: verify the log (as breach open does first), then compute
// the affected set from it, for one partner over ten days and for every
// recipient over the whole month. It reports the seconds of each step, so
// the affected set's cost reads beside verify's in the same run.
func BenchmarkBreachOpen(b *testing.B) {
	db, _, key := auditBenchLog(b)
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 9, 1+d, 0, 0, 0, 0, time.UTC) }
	var verify, partner, all time.Duration
	var affected, everyone int
	for i := 0; i < b.N; i++ {
		start := time.Now()
		size, _, err := db.VerifyAudit(ctx, key, nil)
		if err != nil {
			b.Fatal(err)
		}
		verify += time.Since(start)

		start = time.Now()
		groups, err := db.ReleaseGroups(ctx, commerce.BreachFilter{From: day(3), To: day(13), Actor: "retailer:cli_00"}, size)
		if err != nil {
			b.Fatal(err)
		}
		affected = len(commerce.ScopeOf(groups, "", nil).Subjects)
		partner += time.Since(start)

		start = time.Now()
		groups, err = db.ReleaseGroups(ctx, commerce.BreachFilter{From: day(0), To: day(31)}, size)
		if err != nil {
			b.Fatal(err)
		}
		everyone = len(commerce.ScopeOf(groups, "", nil).Subjects)
		all += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(verify.Seconds()/n, "verify_s")
	b.ReportMetric(partner.Seconds()/n, "affected_partner_10d_s")
	b.ReportMetric(all.Seconds()/n, "affected_all_30d_s")
	b.ReportMetric(float64(affected), "affected_partner")
	b.ReportMetric(float64(everyone), "affected_all")
}
