#!/usr/bin/env bash
# redocly lint of the API description (make lint). Installs @redocly/cli,
# pinned, from the npm registry into .data/npm the first time.
#   scripts/lint-openapi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.77.0
bin=.data/npm/node_modules/.bin/redocly
if ! [ -x "$bin" ] || ! grep -q "\"version\": \"$version\"" .data/npm/node_modules/@redocly/cli/package.json 2>/dev/null; then
  command -v npm >/dev/null || { echo "lint-openapi.sh: npm is missing (Debian's 'npm')" >&2; exit 1; }
  echo "lint-openapi.sh: installing @redocly/cli@$version into .data/npm (one time)" >&2
  mkdir -p .data/npm
  npm install --prefix .data/npm --no-audit --no-fund --silent "@redocly/cli@$version" >&2
fi
# No telemetry, no update check: lint must not phone home.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
# redocly.yaml (rules) and .redocly.lint-ignore.yaml (accepted problems,
# each with its reason) sit at the top of the repository.
rc=0
out=$("$bin" lint --format=stylish broker/httpapi/openapi.json 2>&1) || rc=$?
printf '%s\n' "$out" | grep -v -e '[║╔╚]' -e '^ *$' -e '^No configurations' || true
[ "$rc" = 0 ] || echo "lint-openapi.sh: redocly lint found problems (above)" >&2
exit "$rc"
