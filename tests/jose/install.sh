#!/usr/bin/env bash
# Installs the pinned npm jose that tests/jose checks the broker's JWKS
# with (make test runs this). Without node it does nothing: the Go test
# then skips, or fails when CI is set.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "tests/jose: npm not found; the jose test will skip (or fail in CI)" >&2; exit 0; }
[ -d node_modules/jose ] && exit 0
npm ci --no-audit --no-fund --silent
