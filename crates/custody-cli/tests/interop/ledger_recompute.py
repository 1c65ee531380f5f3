"""Recompute custody's ledger independently: every leaf hash and the signed root.

Usage: ledger_recompute.py ENTRIES CHECKPOINT LOG_PUB_PEM

ENTRIES is the output of `custody log entries` (one event per line, the leaf bytes);
CHECKPOINT the output of `custody log checkpoint` (a C2SP signed note); LOG_PUB_PEM the
log's public key. Uses only Python's rfc8785, hashlib and the `cryptography` package:
nothing of custody's code. Prints {"entries": N, "root": HEX} and exits 0 if the entries
are canonical JSON, their Merkle tree (RFC 9162) has the checkpoint's size and root, and
the checkpoint's signature verifies; exits 3 naming the first disagreement otherwise (a
verdict: Python's own crash exits 1).
"""

import base64
import hashlib
import json
import sys

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(3)


def leaf_hash(leaf):
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(hashes):
    """MTH from RFC 9162 section 2.1.1, over leaf hashes."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(merkle_root(hashes[:k]), merkle_root(hashes[k:]))


def main():
    entries_path, checkpoint_path, pub_path = sys.argv[1:4]
    with open(entries_path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    hashes = []
    for i, line in enumerate(lines):
        canonical = rfc8785.dumps(json.loads(line))
        if canonical != line:
            fail(f"entry {i} is not RFC 8785 canonical JSON")
        hashes.append(leaf_hash(line))

    with open(checkpoint_path, "r", encoding="utf-8") as f:
        note = f.read()
    body, _, signatures = note.partition("\n\n")
    body += "\n"
    origin, size, root_b64 = body.split("\n")[:3]
    if int(size) != len(hashes):
        fail(f"checkpoint size {size} but {len(hashes)} entries")
    root = merkle_root(hashes)
    if base64.b64decode(root_b64) != root:
        fail(f"recomputed root {root.hex()} is not the checkpoint's {base64.b64decode(root_b64).hex()}")

    with open(pub_path, "rb") as f:
        key = load_pem_public_key(f.read())
    raw = key.public_bytes_raw()
    key_hash = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4]
    verified = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            fail(f"malformed signature line {line!r}")
        name, blob = line[2:].split(" ")
        blob = base64.b64decode(blob)
        if name == origin and blob[:4] == key_hash:
            try:
                key.verify(blob[4:], body.encode())
            except InvalidSignature:
                fail("the log key's signature on the checkpoint does not verify")
            verified = True
    if not verified:
        fail("no signature by the log key")
    print(json.dumps({"entries": len(hashes), "root": root.hex()}))


if __name__ == "__main__":
    main()
