#!/usr/bin/env bash
# Make sure headless Chromium is installed for the dashboard's browser tests
# (Debian's package; we run as root on CI and dev machines of this kind).
# Prints the browser's path.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
  if p=$(command -v "$b" 2>/dev/null); then echo "$p"; exit 0; fi
done
if [ "$(id -u)" != 0 ]; then
  echo "chromium.sh: Chromium is missing and we are not root; install Debian's 'chromium'" >&2
  exit 1
fi
echo "chromium.sh: installing Debian's chromium (one time)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
