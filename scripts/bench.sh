#!/usr/bin/env bash
# make bench: the benchmarks of SPEC §8, each printed beside its same-run
# baseline, then one table of every figure. Benchmarks, not timed tests:
# nothing here fails on speed. Uses SIEVE_TEST_DATABASE_URL, else the
# project-local cluster (scripts/pg.sh start), and bin/ (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each clone's cluster has its own port: ask pg.sh rather than assume one.
if [ -z "${SIEVE_TEST_DATABASE_URL:-}" ]; then
  SIEVE_TEST_DATABASE_URL=$(scripts/pg.sh start)
  export SIEVE_TEST_DATABASE_URL
fi
out=.data/bench
mkdir -p "$out"
micro="$out/micro.txt"
: >"$micro"
# bench_citus runs the order flow and partner reads again on the Citus
# cluster (scripts/citus.sh; SPEC §12) and prints both with the ratio. On two
# cores the cluster is slower: the point is the cost of the distributed path.
bench_citus() {
  local curl rc=0
  curl=$(scripts/citus.sh start) || rc=$?
  if [ "$rc" != 0 ]; then
    echo "== Citus: not available (scripts/citus.sh start exited $rc, see above); skipped"
    return 0
  fi
  echo "== order flow and partner reads on the Citus cluster ($curl) beside plain PostgreSQL"
  SIEVE_TEST_DATABASE_URL=$curl bin/sievebench --citus scripts/citus.sh --phases flow,reads \
    --json "$out/results-citus.json" "$@" >"$out/citus.txt"
  bin/sievebench compare postgres "$out/results.json" citus "$out/results-citus.json"
}
run() { echo "\$ go test $*" | tee -a "$micro"; go test "$@" 2>&1 | tee -a "$micro"; }

echo "== release decision (policy + minimisation) beside plain OPA evaluation"
run -run '^$' -bench '^(BenchmarkRelease|BenchmarkOPAEval)$' -benchmem -count 3 ./policies/
echo "== seal + open of a 300-byte record beside age per record"
run -run '^$' -bench '^(BenchmarkSealOpen300|BenchmarkAgePerRecord300)$' -benchmem -count 3 ./broker/seal/
echo "== access tokens"
run -run '^$' -bench '^(BenchmarkVerify|BenchmarkVerifyCached|BenchmarkIssue)$' -benchmem -count 1 ./broker/token/
echo "== audit append beside pgbench (100-row transactions), verify (database, its floor, and offline from an export) beside pgbench reading the entries, explorer over 1,000,000 entries"
run -run '^$' -bench '^(BenchmarkAuditAppend|BenchmarkPgbenchBaseline)$' -benchtime 3s -count 1 ./broker/postgres/
run -run '^$' -bench '^(BenchmarkAuditVerify|BenchmarkAuditVerifyFloor|BenchmarkAuditVerifyExport|BenchmarkPgbenchRead|BenchmarkAuditExplorer|BenchmarkAuditVerifyPolicy)$' -benchtime 3x -count 1 -timeout 30m ./broker/postgres/
echo "== audit append and integration with a real witness cosigning beside without (same run)"
run -run '^$' -bench '^BenchmarkAuditAppendWitness$' -benchtime 3s -count 1 ./broker/postgres/
echo "== retention sweep: shoppers erased per second in batches (shredding, notices, audit) beside deleting the same rows without sealing"
run -run '^$' -bench '^(BenchmarkRetentionSweep|BenchmarkRetentionDeleteBaseline)$' -benchtime 2x -count 1 -timeout 20m ./commerce/
echo "== breach open over the same 1,000,000 entries: verify, then the affected set (one partner, 10 days; every recipient, 30 days)"
run -run '^$' -bench '^BenchmarkBreachOpen$' -benchtime 1x -count 1 -timeout 30m ./broker/postgres/
echo "== end to end: ingest, order flows, partner reads, memory"
bin/sievebench --micro "$micro" --json "$out/results.json" "$@"
bench_citus "$@"
