#!/usr/bin/env bash
# make run: everything a fresh machine needs, then brokerd in the foreground.
#   - PostgreSQL: the project-local cluster under .data/ unless DATABASE_URL is set
#   - dev keys under .data/keys, migrations, the demo catalog and partners
#   - wasim's fake Send API on 127.0.0.1:8090 unless WHATSAPP_API_BASE is set
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL=$(scripts/pg.sh start)
  export DATABASE_URL
fi
export BROKER_KEY_DIR="${BROKER_KEY_DIR:-.data/keys}"
export BROKER_WEBHOOK_ALLOW="${BROKER_WEBHOOK_ALLOW:-127.0.0.0/8,::1/128}"  # the demo's partner webhooks are local
export BROKER_PAYMENT_LOOKUP="${BROKER_PAYMENT_LOOKUP:-on}"  # confirm captures with wasim's payment lookup, as with Meta's
bin/brokerctl keys init >/dev/null
bin/brokerctl migrate >/dev/null
creds=$(bin/brokerctl demo seed --market)
officer=$(bin/brokerctl officer create --name demo-officer --reset 2>/dev/null || true)

# SIEVE_RUN_WITNESS=1: a real witness (litewitness) cosigns the checkpoints.
if [ "${SIEVE_RUN_WITNESS:-}" = 1 ] && [ -z "${BROKER_WITNESS_POLICY:-}" ]; then
  BROKER_WITNESS_POLICY=$(scripts/witness-run.sh)
  export BROKER_WITNESS_POLICY
fi
stop_witness() { [ -f .data/witness/pids ] && kill $(cat .data/witness/pids) 2>/dev/null; rm -f .data/witness/pids; }

wasim_pid=""
if [ -z "${WHATSAPP_API_BASE:-}" ]; then
  bin/wasim serve >.data/wasim.log 2>&1 &
  wasim_pid=$!
fi
cleanup() { [ -n "$wasim_pid" ] && kill "$wasim_pid" 2>/dev/null; stop_witness || true; }
trap cleanup EXIT

addr="${BROKER_ADDR:-127.0.0.1:8080}"
cat <<MSG

  Sieve is starting on http://$addr

  Dashboard:      http://$addr/ui   ${officer:+(officer login: $officer; one-time, the first sign-in asks for your own)}
  Health:         http://$addr/readyz     Metrics: http://$addr/metrics
  OpenAPI:        http://$addr/openapi.json

  Demo partners (OAuth2 client credentials at POST /oauth/token):
$(echo "$creds" | sed 's/^/    /')

  Chat as a shopper, in another terminal:
    go run ./cmd/wasim chat          (type "Hi"; answer buttons by number)
    go run ./cmd/wasim shop          (a scripted purchase, with transcript)

  The marketplace (SPEC §9): three demo stores serve different Bengaluru PIN codes
  (MG Road Kirana 560001/560025, Indiranagar Stores 560038/560008, both auto-accept;
  Koramangala Mart 560034/560095 takes offers by hand: GET /v1/offers, then
  POST /v1/offers/ID/accept). Pick the area with --pincode:
    go run ./cmd/wasim shop --pincode 560038
  Stores see an offer (items, slot, PIN code) before the order; only the one that
  accepts gets it, with the locality and landmark, never the house number.

  Then, as the retailer:
    TOKEN=\$(curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials http://$addr/oauth/token | jq -r .access_token)
    curl -s -H "Authorization: Bearer \$TOKEN" http://$addr/v1/orders | jq

MSG
bin/brokerd &
broker_pid=$!
trap 'kill -TERM $broker_pid 2>/dev/null; wait $broker_pid; cleanup' INT TERM
wait $broker_pid
