#!/usr/bin/env bash
# The service under load from a second process on loopback: `custody serve` on a fresh
# instance filled by `custody demo`, then `custody bench http` for the deploy gate
# (GET /api/v1/verify) and for promotions (POST /api/v1/promotions), each beside /healthz
# on the same server as the baseline, with the server's peak RSS. SQLite by default;
# DATABASE_URL=postgres://… (an empty database) for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-10}
cargo build --release --locked -q -p custody-cli
custody=$(pwd)/target/release/custody
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
data=$work/data
init=()
[ -z "${DATABASE_URL:-}" ] || init=(--database-url "$DATABASE_URL")
[ ${#init[@]} -eq 0 ] || "$custody" init --data-dir "$data" "${init[@]}" > /dev/null
"$custody" serve --data-dir "$data" --listen 127.0.0.1:0 > "$work/serve.out" 2> "$work/serve.err" &
server=$!
for _ in $(seq 50); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.2; done
url=$(sed -n 's/^custody listening on //p' "$work/serve.out")
"$custody" demo --data-dir "$data" > /dev/null
argo=$("$custody" token create --principal argo --data-dir "$data" 2>/dev/null)
rita=$("$custody" token create --principal rita --data-dir "$data" 2>/dev/null)
digest=$("$custody" history --data-dir "$data" --env production --json --limit 0 \
    | python3 -c 'import json,sys; e=[x for x in json.load(sys.stdin) if x["event"]["type"]=="rollback"][-1]; print(e["event"]["artifacts"][-1])')

backend=SQLite
[ -z "${DATABASE_URL:-}" ] || backend=PostgreSQL
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ); backend: $backend"
echo "== GET /api/v1/verify (allowed: the release certified in production after the demo's rollback)"
echo "-- as fast as it answers (closed loop):"
"$custody" bench http --server "$url" --token "$argo" --route verify --env production --digest "$digest" \
    --seconds "$SECONDS_EACH" --server-pid "$server"
echo "-- at the target rate (open loop, latency from when each request was due):"
"$custody" bench http --server "$url" --token "$argo" --route verify --env production --digest "$digest" \
    --seconds "$SECONDS_EACH" --server-pid "$server" --rate "${VERIFY_RATE:-20000}"
echo "== POST /api/v1/promotions (shop@1.0.0 → build, certified each time)"
"$custody" bench http --server "$url" --token "$rita" --route promote --env build --release shop@1.0.0 \
    --seconds "$SECONDS_EACH" --server-pid "$server"
