#!/usr/bin/env bash
# Run every Fuzz* target of the module for a bounded time each.
#   scripts/fuzz.sh [FUZZTIME]     (default 30s; make test uses a few seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-30s}"
n=0
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  echo "fuzz $pkg $name ($t)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$pkg" >/tmp/sieve-fuzz.log 2>&1 || {
    cat /tmp/sieve-fuzz.log; echo "fuzz target $name in $pkg failed"; exit 1; }
  n=$((n + 1))
done < <(grep -rEn --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' . | grep -v '/\.data/' |
         sed -E 's/^\.\/([^:]+):[0-9]+:func (Fuzz[A-Za-z0-9_]+)\(.*/\1:\2/')
echo "fuzz: $n targets passed"
