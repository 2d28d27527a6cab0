package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// affected is the number of shoppers the groups touch: those with a
// release of at least one field (as commerce.ScopeOf counts them for a
// breach of every category; commerce itself is beyond broker's arrows).
func affected(groups []broker.ReleaseGroup) int {
	fields := map[string]int{}
	subjects := map[string]bool{}
	for _, g := range groups {
		n, ok := fields[g.Released]
		if !ok {
			var fs []string
			if err := json.Unmarshal([]byte(g.Released), &fs); err != nil {
				n = 1 // as ScopeOf: an unreadable release touches every category
			} else {
				n = len(fs)
			}
			fields[g.Released] = n
		}
		if n > 0 {
			subjects[g.Subject] = true
		}
	}
	return len(subjects)
}

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
	var affectedN, everyone int
	for i := 0; i < b.N; i++ {
		start := time.Now()
		size, _, err := db.AuditReports().VerifyAudit(ctx, key, nil)
		if err != nil {
			b.Fatal(err)
		}
		verify += time.Since(start)

		start = time.Now()
		groups, err := db.AuditReports().AuditReleaseGroups(ctx, day(3), day(13), "retailer:cli_00", size)
		if err != nil {
			b.Fatal(err)
		}
		affectedN = affected(groups)
		partner += time.Since(start)

		start = time.Now()
		groups, err = db.AuditReports().AuditReleaseGroups(ctx, day(0), day(31), "", size)
		if err != nil {
			b.Fatal(err)
		}
		everyone = affected(groups)
		all += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(verify.Seconds()/n, "verify_s")
	b.ReportMetric(partner.Seconds()/n, "affected_partner_10d_s")
	b.ReportMetric(all.Seconds()/n, "affected_all_30d_s")
	b.ReportMetric(float64(affectedN), "affected_partner")
	b.ReportMetric(float64(everyone), "affected_all")
}
