#!/usr/bin/env bash
# Regal, the Rego linter, over policies/ with .regal/config.yaml (make lint).
# Uses $REGAL, else regal on PATH, else .data/bin/regal, else installs the
# pinned version there with go install.
#   scripts/lint-rego.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=v0.42.0
regal="${REGAL:-}"
if [ -z "$regal" ]; then
  if command -v regal >/dev/null; then
    regal=regal
  else
    regal=.data/bin/regal
    if ! [ -x "$regal" ]; then
      echo "lint-rego.sh: installing Regal $version into .data/bin (one time)" >&2
      if ! GOBIN="$PWD/.data/bin" go install "github.com/open-policy-agent/regal@$version" >&2; then
        # Some module proxies refuse Regal: build it from its source instead.
        echo "lint-rego.sh: Regal $version could not be installed with go install; build it from" \
             "its source (github.com/open-policy-agent/regal at tag $version: go build -o" \
             "$PWD/.data/bin/regal .) or set REGAL to a regal binary" >&2
        exit 1
      fi
    fi
  fi
fi
"$regal" lint --config-file .regal/config.yaml policies
