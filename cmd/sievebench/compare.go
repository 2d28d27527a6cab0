package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// compare prints the order flow and partner reads of two result files
// (make bench: plain PostgreSQL, then the Citus cluster, same run) side by
// side with the ratio second/first.
func compare(w io.Writer, args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: sievebench compare NAME1 FILE1 NAME2 FILE2")
	}
	var res [2]Results
	for i, f := range []string{args[1], args[3]} {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &res[i]); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	a, b := res[0], res[1]
	ratio := func(x, y float64) string {
		if x == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", y/x)
	}
	fmt.Fprintf(w, "%-36s %14s %14s %8s\n", "", args[0], args[2], "ratio")
	row := func(name string, x, y float64) {
		fmt.Fprintf(w, "%-36s %14.1f %14.1f %8s\n", name, x, y, ratio(x, y))
	}
	row("order flow: orders/s", a.Flow.OrdersPerSec, b.Flow.OrdersPerSec)
	row("order flow: webhook messages/s", a.Flow.MessagesPerSec, b.Flow.MessagesPerSec)
	row("order flow: webhook p50 ms", a.Flow.LatencyMs.P50, b.Flow.LatencyMs.P50)
	row("order flow: webhook p99 ms", a.Flow.LatencyMs.P99, b.Flow.LatencyMs.P99)
	row("partner reads/s", a.PartnerReads.PerSecond, b.PartnerReads.PerSecond)
	row("partner reads p50 ms", a.PartnerReads.P50Ms, b.PartnerReads.P50Ms)
	row("partner reads p99 ms", a.PartnerReads.P99Ms, b.PartnerReads.P99Ms)
	fmt.Fprintf(w, "%-36s %14d %14d\n", "order flow errors", len(a.Flow.FlowErrors), len(b.Flow.FlowErrors))
	fmt.Fprintf(w, "%-36s %14d %14d\n", "partner read errors", a.PartnerReads.Errors, b.PartnerReads.Errors)
	return nil
}
