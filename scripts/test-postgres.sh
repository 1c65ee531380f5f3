#!/usr/bin/env bash
# Starts the PostgreSQL server the tests use, installing Debian's `postgresql` first if the
# machine has none. Idempotent: a running server is reused. Prints the server's URL.
#
#   url=$(scripts/test-postgres.sh)
#   scripts/test-postgres.sh stop     # stops it (fast shutdown: open connections are cut)
#
# CUSTODY_TEST_PG_PORT and CUSTODY_TEST_PG_DIR choose another cluster (a test that stops
# and restarts its own server uses them, leaving the shared one alone).
#
# The cluster lives outside the checkout (the server runs as the `postgres` user, which
# may not be able to enter the checkout's directories); it listens on 127.0.0.1 only and
# trusts local connections, so it is for tests and nothing else.
set -euo pipefail

port=${CUSTODY_TEST_PG_PORT:-55432}
state=${CUSTODY_TEST_PG_DIR:-/tmp/custody-test-postgres-$(id -u)}

log() { printf '%s\n' "$*" >&2; }

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bin=$(find_bin)
if [ -z "$bin" ]; then
    log "==> installing PostgreSQL from Debian's packages"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends postgresql >&2
    bin=$(find_bin)
fi

# As root, run the server as the `postgres` user (PostgreSQL refuses to run as root).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-start}" = stop ]; then
    as_owner "$bin/pg_ctl" -D "$state/data" -w -t 60 -m fast stop >/dev/null
    exit 0
fi

if ! as_owner "$bin/pg_ctl" -D "$state/data" status >/dev/null 2>&1; then
    if [ ! -f "$state/data/PG_VERSION" ]; then
        log "==> creating a test PostgreSQL cluster in $state"
        mkdir -p "$state"
        [ "$(id -u)" -ne 0 ] || chown postgres: "$state"
        as_owner "$bin/initdb" -D "$state/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
    fi
    log "==> starting PostgreSQL on 127.0.0.1:$port"
    as_owner "$bin/pg_ctl" -D "$state/data" -l "$state/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$state -c max_connections=200" \
        start >/dev/null
fi

# Each test makes its own database; drop those an earlier run left, so the cluster does not
# grow from run to run.
"$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq -c \
    "SELECT datname FROM pg_database WHERE datname LIKE 'custody\_test\_%' OR datname LIKE 'custody\_cli\_test\_%'" |
    while read -r db; do
        "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null
    done

echo "postgres://postgres@127.0.0.1:$port/postgres"
