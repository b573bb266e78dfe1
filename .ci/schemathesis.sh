#!/usr/bin/env bash
# Fuzzes the running API with schemathesis from its own /openapi.json, as a
# customer and as an admin: no 5xx, and every response conforms to the
# documented schema, status codes and content types. Bounded in time.
# Usage: bash .ci/schemathesis.sh [path/to/kassa-api]   (needs `pip install schemathesis`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

api_bin=${1:-target/debug/kassa-api}
max_time=${SCHEMATHESIS_MAX_TIME:-150}
examples=${SCHEMATHESIS_MAX_EXAMPLES:-30}
data=$(mktemp -d)
log="$data/api.log"
cleanup() {
  [[ -n "${api_pid:-}" ]] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

KASSA_BIND=127.0.0.1:0 KASSA_DATA_DIR="$data" KASSA_ADMIN_SECRET=schemathesis-admin-secret \
KASSA_AUTH_RATE_PER_MIN=1000000 KASSA_AUTH_BURST=1000000 \
KASSA_CHECKOUT_RATE_PER_MIN=1000000 KASSA_CHECKOUT_BURST=1000000 \
KASSA_SQLITE_SYNCHRONOUS=normal KASSA_WITH_WORKER=1 RUST_LOG=warn,kassa_http::startup=info \
  "$api_bin" >"$log" 2>&1 &
api_pid=$!
for _ in $(seq 1 300); do
  addr=$(grep -o 'listening on [0-9.:]*' "$log" | head -n1 | awk '{print $3}' || true)
  [[ -n "$addr" ]] && break
  sleep 0.1
done
[[ -n "${addr:-}" ]] || { cat "$log"; echo "kassa-api did not start"; exit 1; }
base="http://$addr"

json() { curl -sf -H 'content-type: application/json' "$@"; }
token_of() {
  json -d "{\"username\":\"$1\",\"password\":\"correct horse battery\"}" "$base/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
json -d '{"username":"fuzzadmin","email":"fuzzadmin@example.com","password":"correct horse battery","secret_key":"schemathesis-admin-secret"}' \
  "$base/auth/register-admin" >/dev/null
json -d '{"username":"fuzzer","email":"fuzzer@example.com","password":"correct horse battery"}' "$base/auth/register" >/dev/null
admin=$(token_of fuzzadmin)
customer=$(token_of fuzzer)
for i in 1 2 3; do
  json -H "authorization: Bearer $admin" \
    -d "{\"name\":\"Fuzz product $i\",\"price_cents\":${i}00,\"stock\":1000,\"category\":\"fuzz\"}" "$base/products/" >/dev/null
done

status=0
for who in customer admin; do
  token=${!who}
  echo "== schemathesis as $who against $base (max ${max_time}s, ${examples} examples per operation)"
  schemathesis run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" --max-time "$max_time" --workers 2 --seed 7 \
    --suppress-health-check all --warnings off || status=1
done
if grep -q "panicked" "$log"; then
  echo "kassa-api panicked during the run:"; grep -B2 -A5 panicked "$log"; status=1
fi
exit $status
