"""An independent checkpoint verifier that follows a log-key hand-over.

Written from the C2SP signed-note and tlog-checkpoint specs and RFC 9162, not from
custody's code: it starts from the OLD log public key only, verifies the hand-over
checkpoint with it, checks the log.key_rotated event is that checkpoint's last leaf,
learns the new key from the event, checks the new key signed the hand-over too, and
verifies the newest checkpoint with the new key.

usage: follow_log_key.py ORIGIN OLD_PUB_PEM HANDOVER_NOTE LEAF PROOF_JSON NEWEST_NOTE
Prints "ok: ..." and exits 0, or prints why and exits 3 (a verdict: Python's own crash
exits 1).
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)


def fail(why):
    print("FAILED: " + why)
    sys.exit(3)


def key_hash(name, raw):
    # C2SP signed-note: the first 4 bytes of SHA-256(name || "\n" || 0x01 || key).
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw).digest()[:4]


def verify_note(note, name, raw):
    """The note's text if a signature line by (name, raw) verifies; else fail."""
    text, sep, sigs = note.rpartition("\n\n")
    if not sep:
        fail("not a signed note")
    text += "\n"
    want = key_hash(name, raw)
    key = Ed25519PublicKey.from_public_bytes(raw)
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            fail("bad signature line %r" % line)
        sig_name, _, blob = line[2:].partition(" ")
        blob = base64.b64decode(blob)
        if sig_name != name or blob[:4] != want:
            continue
        try:
            key.verify(blob[4:], text.encode())
        except InvalidSignature:
            fail("a signature by %s+%s does not verify" % (name, want.hex()))
        return text
    fail("no signature by %s+%s" % (name, want.hex()))


def checkpoint(text):
    origin, size, root = text.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf_hash, index, size, proof):
    # RFC 9162 section 2.1.3.2.
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            fail("inclusion proof too long")
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        fail("inclusion proof too short")
    return r


def main():
    origin, old_pem, handover_path, leaf_path, proof_path, newest_path = sys.argv[1:7]
    old_key = load_pem_public_key(open(old_pem, "rb").read())
    old_raw = old_key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    handover = open(handover_path).read()
    h_origin, h_size, h_root = checkpoint(verify_note(handover, origin, old_raw))
    if h_origin != origin:
        fail("hand-over origin %r" % h_origin)

    leaf = open(leaf_path, "rb").read().rstrip(b"\n")
    event = json.loads(leaf)
    if event.get("type") != "log.key_rotated" or event.get("size") != h_size:
        fail("the leaf is not the hand-over event of this checkpoint")
    old_text = "%s+%s+%s" % (
        origin,
        key_hash(origin, old_raw).hex(),
        base64.b64encode(b"\x01" + old_raw).decode(),
    )
    if event["old_key"] != old_text:
        fail("the event hands over another key")
    name, hash_hex, new_b64 = event["new_key"].split("+", 2)
    new_raw = base64.b64decode(new_b64)[1:]
    if name != origin or key_hash(name, new_raw).hex() != hash_hex:
        fail("the new key text's hash does not match")
    proof = [bytes.fromhex(h) for h in json.load(open(proof_path))["hashes"]]
    leaf_hash = hashlib.sha256(b"\x00" + leaf).digest()
    if root_from_inclusion(leaf_hash, h_size - 1, h_size, proof) != h_root:
        fail("the hand-over event is not the checkpoint's last leaf")
    verify_note(handover, origin, new_raw)

    newest = open(newest_path).read()
    n_origin, n_size, _ = checkpoint(verify_note(newest, origin, new_raw))
    if n_origin != origin or n_size < h_size:
        fail("the newest checkpoint is not later than the hand-over")
    print("ok: followed the hand-over at %d to key %s; newest checkpoint %d verified" % (h_size, hash_hex, n_size))


main()
