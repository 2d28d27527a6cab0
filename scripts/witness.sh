#!/usr/bin/env bash
# Install the independent tlog-witness the tests (and optionally make run)
# run on loopback: litewitness and witnessctl from filippo.io/torchwood at
# v0.6.1 (v0.10.0 needs a newer Go than this machine's), built from the Go
# module proxy into the project-local bin/. Prints litewitness's path.
# Never a witness written for this project (SPEC §6).
set -euo pipefail
cd "$(dirname "$0")/.."
version=v0.6.1
bin="$PWD/bin"
mkdir -p "$bin"
# Test binaries of several packages may call this at once: one installs.
exec 9>"$bin/.witness.lock"
flock 9
have() { [ -x "$bin/$1" ] && go version -m "$bin/$1" 2>/dev/null | grep -q "filippo.io/torchwood[[:space:]]*$version"; }
if ! have litewitness || ! have witnessctl; then
  echo "witness.sh: installing litewitness and witnessctl $version into bin/ (one time)" >&2
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install \
    "filippo.io/torchwood/cmd/litewitness@$version" "filippo.io/torchwood/cmd/witnessctl@$version" >&2
fi
echo "$bin/litewitness"
