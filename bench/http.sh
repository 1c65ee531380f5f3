#!/usr/bin/env bash
# The service under load from a second process on loopback: `custody serve` on a fresh
# instance filled by `custody demo`, then `custody bench http` for the deploy gate
# (GET /api/v1/verify) and for promotions (POST /api/v1/promotions), each beside /healthz
# on the same server as the baseline, with the server's peak RSS. SQLite by default;
# DATABASE_URL=postgres://… (an empty database) for PostgreSQL.
#
# BASELINE=path/to/an/older/custody runs the deploy gate's measurement on that build too,
# in the same run, alternating with this one (ROUNDS times each), so a change's cost is
# a ratio measured under the same load; this build's `bench http` drives both. On
# PostgreSQL the baseline needs an empty database of its own: BASELINE_DATABASE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-10}
ROUNDS=${ROUNDS:-3}
cargo build --release --locked -q -p custody-cli
custody=$(realpath "${CARGO_TARGET_DIR:-target}")/release/custody
work=$(mktemp -d)
servers=()
trap 'for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# start NAME BINARY: a fresh instance of BINARY serving the demo; sets url, server, argo,
# rita and digest.
start() {
    local name=$1 bin=$2 data=$work/$1 database=${DATABASE_URL:-}
    [ "$name" != baseline ] || database=${BASELINE_DATABASE_URL:-$database}
    local init=()
    [ -z "$database" ] || init=(--database-url "$database")
    [ ${#init[@]} -eq 0 ] || "$bin" init --data-dir "$data" "${init[@]}" > /dev/null
    "$bin" serve --data-dir "$data" --listen 127.0.0.1:0 > "$work/$name.out" 2> "$work/$name.err" &
    server=$!
    servers+=("$server")
    for _ in $(seq 50); do grep -q listening "$work/$name.out" 2>/dev/null && break; sleep 0.2; done
    url=$(sed -n 's/^custody listening on //p' "$work/$name.out")
    "$bin" demo --data-dir "$data" > /dev/null
    # Builds before local identities took the operator's name wanted --as.
    token() {
        "$bin" token create --principal "$1" --data-dir "$data" 2>/dev/null \
            || "$bin" token create --principal "$1" --as root --data-dir "$data" 2>/dev/null
    }
    argo=$(token argo)
    rita=$(token rita)
    digest=$("$bin" history --data-dir "$data" --env production --json --limit 0 \
        | python3 -c 'import json,sys; e=[x for x in json.load(sys.stdin) if x["event"]["type"]=="rollback"][-1]; print(e["event"]["artifacts"][-1])')
}

backend=SQLite
[ -z "${DATABASE_URL:-}" ] || backend=PostgreSQL
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ); backend: $backend"
start current "$custody"
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

if [ -n "${BASELINE:-}" ]; then
    current=("$url" "$argo" "$digest" "$server")
    start baseline "$BASELINE"
    baseline=("$url" "$argo" "$digest" "$server")
    echo "== GET /api/v1/verify, this build against BASELINE=$BASELINE, closed loop, $ROUNDS rounds each, alternating"
    for round in $(seq "$ROUNDS"); do
        for which in current baseline; do
            declare -n s=$which
            echo "-- $which, round $round:"
            "$custody" bench http --server "${s[0]}" --token "${s[1]}" --route verify --env production \
                --digest "${s[2]}" --seconds "$SECONDS_EACH" --server-pid "${s[3]}"
        done
    done
fi
