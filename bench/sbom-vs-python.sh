#!/usr/bin/env bash
# custody-evidence parsing a 50 MB CycloneDX SBOM (20,000 components, the criterion
# bench's generated document) against Python's json.load of the same file, in the same
# run: best of 3 wall times each, the ratio, and both peak RSS figures.
#
# custody's time is the whole process (start, read, parse, normalise, summarise);
# Python's is json.load alone, after interpreter start-up. Needs python3 and GNU time.
#
# ATTEST=1 also times `custody attest` of the same file into a demo instance with the
# release binary (read, encode, parse, keep the blob, sign the evidence statement, append
# to the ledger: what a pipeline waits for), with its peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${N:-20000}
cargo build --release --locked -q -p custody-evidence --example make_sbom --example parse_report
bin=${CARGO_TARGET_DIR:-target}/release/examples
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sbom=$work/sbom.cdx.json
"$bin/make_sbom" "$sbom" "$N"
cat "$sbom" > /dev/null   # into the page cache


py_load='import json,sys,time
t=time.perf_counter(); d=json.load(open(sys.argv[1],"rb")); print(time.perf_counter()-t)'
python_t=$(for _ in 1 2 3; do python3 -c "$py_load" "$sbom"; done | sort -g | head -1)
custody_t=$(best "$bin/parse_report" cyclonedx "$sbom")
custody_rss=$(/usr/bin/time -f %M "$bin/parse_report" cyclonedx "$sbom" 2>&1 >/dev/null | tail -1)
python_rss=$(/usr/bin/time -f %M python3 -c "$py_load" "$sbom" 2>&1 >/dev/null | tail -1)

echo "file: $(($(stat -c %s "$sbom") / 1000000)) MB, $N components, $(nproc) cores"
printf 'python json.load:        %.3f s  (peak RSS %s KiB, interpreter included)\n' "$python_t" "$python_rss"
printf 'custody parse+summarise: %.3f s  (peak RSS %s KiB, whole process)\n' "$custody_t" "$custody_rss"
echo "custody speed / python:  $(python3 -c "print(f'{$python_t / $custody_t:.2f}')")x"

if [ "${ATTEST:-0}" = 1 ]; then
    cargo build --release --locked -q -p custody-cli
    custody=${CARGO_TARGET_DIR:-target}/release/custody
    "$custody" demo --data-dir "$work/data" > /dev/null
    artifact=$("$custody" history --json --type artifact.registered --data-dir "$work/data" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["event"]["artifact"]["digest"])')
    attest_t=$(best "$custody" attest --artifact "$artifact" --type cyclonedx "$sbom" --data-dir "$work/data")
    attest_rss=$(/usr/bin/time -f %M "$custody" attest --artifact "$artifact" --type cyclonedx "$sbom" \
        --data-dir "$work/data" 2>&1 >/dev/null | tail -1)
    printf 'custody attest (local):  %.3f s  (peak RSS %s KiB, whole process)\n' "$attest_t" "$attest_rss"
fi
