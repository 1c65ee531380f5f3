#!/usr/bin/env bash
# `custody digest` against `openssl dgst -sha256` (and sha256sum) on the same 1 GiB file
# from the page cache, side by side; best of 3 runs each, with custody's peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SIZE_MIB=${SIZE_MIB:-1024}
cargo build --release --locked -q -p custody-cli
custody=target/release/custody
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file=$work/artifact.bin
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$file"
cat "$file" > /dev/null   # into the page cache

gbs() { python3 -c "print(f'{$SIZE_MIB * 1048576 / $1 / 1e9:.2f}')"; }

openssl_t=$(best openssl dgst -sha256 "$file")
custody_t=$(best "$custody" digest "$file")
sha256sum_t=$(best sha256sum "$file")
rss_kib=$(/usr/bin/time -f %M "$custody" digest "$file" 2>&1 >/dev/null | tail -1)

echo "file: $SIZE_MIB MiB from the page cache, $(nproc) cores"
echo "openssl dgst -sha256: $(gbs "$openssl_t") GB/s"
echo "sha256sum:            $(gbs "$sha256sum_t") GB/s"
echo "custody digest:       $(gbs "$custody_t") GB/s  (peak RSS ${rss_kib} KiB)"
echo "custody / openssl:    $(python3 -c "print(f'{$openssl_t / $custody_t:.2f}')")x"
