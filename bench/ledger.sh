#!/usr/bin/env bash
# The durable ledger on this machine: appends with fsync on from 64 concurrent writers, and
# proof latency and storage at 1,000,000 entries, on SQLite (a temporary directory here)
# and on the test PostgreSQL server (scripts/test-postgres.sh). Baselines from the same run:
# the disk's own fsync rate (printed by `custody bench append`) and, for PostgreSQL,
# pgbench committing one-row inserts from 64 clients (the server's bare durable-commit rate).
#
#   bench/ledger.sh            # ENTRIES=1000000 EVENTS=50000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=${ENTRIES:-1000000}
EVENTS=${EVENTS:-50000}
cargo build --release --locked -q -p custody-cli
custody=$(pwd)/target/release/custody
url=$(scripts/test-postgres.sh)
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

fresh_db() {  # a new empty database on the test server; prints its URL
    local name="custody_bench_$$_$1"
    PGOPTIONS="-c client_min_messages=warning" "$bin/psql" -q "$url" \
        -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >&2
    echo "${url%/*}/$name"
}

echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo "== durable appends, $EVENTS events, 64 writers"
"$custody" bench append --events "$EVENTS" --writers 64
"$custody" bench append --events "$EVENTS" --writers 64 --database-url "$(fresh_db append)"

echo
echo "== baseline: pgbench, one-row INSERT per commit, 64 clients, 10 s"
base=$(fresh_db pgbench)
"$bin/psql" -q "$base" -c "CREATE TABLE t (id bigserial PRIMARY KEY, payload text)"
script=$(mktemp)
trap 'rm -f "$script"' EXIT
echo "INSERT INTO t (payload) VALUES (repeat('x', 200));" > "$script"
"$bin/pgbench" -n -c 64 -j 2 -T 10 -f "$script" "$base" 2>/dev/null | grep -E "^tps"

echo
echo "== proofs and storage at $ENTRIES entries"
"$custody" bench proofs --entries "$ENTRIES"
"$custody" bench proofs --entries "$ENTRIES" --database-url "$(fresh_db proofs)"
