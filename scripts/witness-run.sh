#!/usr/bin/env bash
# Start a litewitness (scripts/witness.sh) on loopback for make run
# (SIEVE_RUN_WITNESS=1 make run): a dedicated ssh-agent holding a witness
# key under .data/witness, the log added with the broker's checkpoint key,
# and a witness policy (quorum 1). Prints the policy file's path; the
# witness and its agent run until make run ends (their pids in
# .data/witness/pids). Needs bin/brokerctl and the database up.
set -euo pipefail
cd "$(dirname "$0")/.."
lw=$(scripts/witness.sh)
dir=.data/witness
mkdir -p "$dir"
[ -f "$dir/key" ] || ssh-keygen -q -t ed25519 -N '' -C sieve-witness -f "$dir/key" >&2
rm -f "$dir/agent.sock"
eval "$(ssh-agent -a "$dir/agent.sock" -s)" >/dev/null
SSH_AUTH_SOCK="$dir/agent.sock" ssh-add -q "$dir/key" 2>/dev/null
fp=$(ssh-keygen -lf "$dir/key.pub" | awk '{print $2}')
logkey=$(bin/brokerctl audit key)
origin=${logkey%%+*}
db="$dir/litewitness.db"
if ! bin/witnessctl list-logs -db "$db" 2>/dev/null | grep -qF "\"origin\":\"$origin\""; then
  bin/witnessctl add-log -db "$db" -origin "$origin" 2>/dev/null
fi
bin/witnessctl add-key -db "$db" -origin "$origin" -key "$logkey" 2>/dev/null || true
addr="${SIEVE_WITNESS_ADDR:-127.0.0.1:7380}"
"$lw" -name sieve.local/witness -db "$db" -ssh-agent "$dir/agent.sock" -key "$fp" -listen "$addr" >"$dir/litewitness.log" 2>&1 &
echo "$! $SSH_AGENT_PID" >"$dir/pids"
for _ in $(seq 100); do
  vkey=$(sed -n 's/.*vkey=\([^ ]*\).*/\1/p' "$dir/litewitness.log" | head -1)
  [ -n "$vkey" ] && break
  sleep 0.1
done
[ -n "$vkey" ] || { cat "$dir/litewitness.log" >&2; echo "witness-run.sh: litewitness did not start" >&2; exit 1; }
printf 'witness local %s http://%s\nquorum 1\n' "$vkey" "$addr" >"$dir/policy"
echo "$PWD/$dir/policy"
