#!/usr/bin/env bash
# Batch DSSE verification: `custody dsse verify --jsonl` against securesystemslib on the
# same 10,000 envelopes, Ed25519 and ECDSA P-256, measured in the same run.
#
# custody's time is the whole command (process start, reading, parsing, verifying) on all
# cores and on one (RAYON_NUM_THREADS=1); the Python figure excludes interpreter start-up.
# Needs .venv (scripts/test.sh creates it).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
py=.venv/bin/python
cargo build --release --locked -q -p custody-cli
custody=target/release/custody
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1 / ($3 - $2):.0f}')"; }

printf '%-11s %12s %12s %12s %10s %10s\n' algorithm sslib/s custody-1/s custody-all/s ratio-1 ratio-all
for alg in ed25519 ecdsa-p256; do
    "$custody" key generate --algorithm "$alg" --out "$work/$alg" >/dev/null 2>&1
    "$py" bench/make_envelopes.py "$work/$alg.key" "$N" "$work/$alg.jsonl"
    sslib=$("$py" bench/sslib_verify_batch.py "$work/$alg.pub" "$work/$alg.jsonl")
    t0=$(now); RAYON_NUM_THREADS=1 "$custody" dsse verify --jsonl --key "$work/$alg.pub" "$work/$alg.jsonl" >/dev/null; t1=$(now)
    one=$(rate "$N" "$t0" "$t1")
    t0=$(now); "$custody" dsse verify --jsonl --key "$work/$alg.pub" "$work/$alg.jsonl" >/dev/null; t1=$(now)
    all=$(rate "$N" "$t0" "$t1")
    printf '%-11s %12s %12s %12s %9.1fx %9.1fx\n' "$alg" "$sslib" "$one" "$all" \
        "$(python3 -c "print($one/$sslib)")" "$(python3 -c "print($all/$sslib)")"
done
echo "($(nproc) cores; $N envelopes each)"
