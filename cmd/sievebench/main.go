// Command sievebench runs the end-to-end benchmarks of SPEC §8 against real
// processes on this machine and prints each figure beside its same-run
// baseline:
//
//   - webhook ingest to durable (wasim load → brokerd) beside pgbench
//     single-row commits at the same concurrency;
//   - full order flows (Hi → cart → address → payment → retailer fetch);
//   - partner reads (GET /v1/orders/{id}: JWT + policy + unseal + audit)
//     beside a static handler served the same way;
//   - the same reads while 64 anonymous clients guess secrets at
//     /oauth/token, beside the reads without them;
//   - brokerd's peak RSS through the run.
//
// It creates its own database on the server named by
// SIEVE_TEST_DATABASE_URL (make bench starts the project-local cluster),
// and expects bin/brokerd, bin/brokerctl and bin/wasim (make build).
// Everything stays on loopback; every load is bounded in count and time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "static" {
		serveStatic(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		if err := compare(os.Stdout, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sievebench compare:", err)
			os.Exit(1)
		}
		return
	}
	fs := flag.NewFlagSet("sievebench", flag.ExitOnError)
	bin := fs.String("bin", "bin", "directory with brokerd, brokerctl and wasim")
	out := fs.String("json", "", "also write the results as JSON to this file")
	dur := fs.Duration("duration", 10*time.Second, "length of each load phase")
	ingestRate := fs.Float64("ingest-rate", 10000, "offered webhook rate (messages/s)")
	conc := fs.Int("concurrency", 32, "concurrent connections for partner reads and pgbench")
	flowRate := fs.Float64("flow-rate", 1500, "purchases started per second in the order-flow phase")
	micro := fs.String("micro", "", "go test -bench output to include in the table")
	phases := fs.String("phases", strings.Join(allPhases, ","), "comma-separated phases to run: "+strings.Join(allPhases, ", ")+
		" (without flow, a few orders are placed unmeasured for the reads)")
	citusSh := fs.String("citus", "", "scripts/citus.sh: the server is a Citus coordinator, and this script makes and drops the database on every node")
	port := fs.Int("port", 18080, "brokerd's loopback port (the static baseline uses port+1, wasim port+10)")
	fs.Parse(os.Args[1:]) //nolint:errcheck

	chosen := map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		if p = strings.TrimSpace(p); !slices.Contains(allPhases, p) {
			fmt.Fprintf(os.Stderr, "sievebench: unknown phase %q (known: %s)\n", p, strings.Join(allPhases, ", "))
			os.Exit(2)
		}
		chosen[p] = true
	}
	setPorts(*port)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r := &runner{bin: *bin, dur: *dur, ingestRate: *ingestRate, conc: *conc, flowRate: *flowRate, phases: chosen, citusSh: *citusSh}
	res, err := r.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sievebench:", err)
		r.cleanup()
		os.Exit(1)
	}
	r.cleanup()
	if *micro != "" {
		m, err := parseMicro(*micro)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sievebench:", err)
			os.Exit(1)
		}
		res.Micro = m
	}
	res.print(os.Stdout)
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "sievebench:", err)
			os.Exit(1)
		}
	}
}
