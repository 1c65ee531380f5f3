#!/usr/bin/env bash
# The whole custody test suite, runnable on a fresh machine with only the Rust toolchain
# and Python 3. It first installs what the tests need and the machine lacks (Debian
# packages with apt-get, Python and npm packages into cached directories; idempotently: a
# second run reuses what the first installed), then runs fmt, clippy and every test.
#
#   scripts/test.sh            # everything, as CI runs it
#
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

# --- Python reference implementations for the interop tests ------------------------------
requirements=crates/custody-cli/tests/interop/requirements.txt
stamp=.venv/.requirements-installed
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    step "installing the Python reference implementations into .venv"
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
fi
export CUSTODY_TEST_PYTHON="$root/.venv/bin/python"

# Debian packages, as root or with sudo.
apt_install() {
    local sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL for the store's conformance, crash and multi-process tests -----------------
step "PostgreSQL test server"
CUSTODY_TEST_DATABASE_URL=$(scripts/test-postgres.sh)
export CUSTODY_TEST_DATABASE_URL

# --- Debian's Chromium and ChromeDriver for the dashboard's browser tests -------------------
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    step "installing Debian's chromium and chromium-driver"
    apt_install chromium chromium-driver
fi
export CUSTODY_TEST_CHROMEDRIVER=${CUSTODY_TEST_CHROMEDRIVER:-$(command -v chromedriver)}
export CUSTODY_TEST_CHROMIUM=${CUSTODY_TEST_CHROMIUM:-$(command -v chromium)}

# --- Node.js and a real OpenID Provider for the dashboard's OIDC sign-in tests --------------
# Debian's nodejs and npm, then the pinned oidc-provider (crates/custody-cli/tests/oidc_provider)
# installed with `npm ci` into .oidc-provider, again only when its package-lock.json changed.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    step "installing Debian's nodejs and npm"
    apt_install nodejs npm
fi
provider_src=crates/custody-cli/tests/oidc_provider
provider_dir=.oidc-provider
if ! cmp -s "$provider_src/package-lock.json" "$provider_dir/package-lock.json" 2>/dev/null \
    || [ ! -e "$provider_dir/node_modules/oidc-provider/package.json" ]; then
    step "installing the test OpenID Provider (npm ci) into $provider_dir"
    mkdir -p "$provider_dir"
    cp "$provider_src/package.json" "$provider_src/package-lock.json" "$provider_dir/"
    (cd "$provider_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
export CUSTODY_TEST_NODE=${CUSTODY_TEST_NODE:-$(command -v node)}
export CUSTODY_TEST_OIDC_PROVIDER=${CUSTODY_TEST_OIDC_PROVIDER:-$root/$provider_dir}

# --- SoftHSM2 for the PKCS#11 signer's tests and bench ---------------------------------------
# The tests make their own token directories (SOFTHSM2_CONF per test process); they only need
# the module.
if [ ! -e /usr/lib/softhsm/libsofthsm2.so ]; then
    step "installing Debian's softhsm2"
    apt_install softhsm2
fi

# --- Rust -----------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked --no-fail-fast
