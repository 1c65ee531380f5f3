"""The transparency-log half of the independent audit-bundle verifier: RFC 9162 hashes
and proofs, C2SP signed-note checkpoints, and the log keys' hand-overs. Written from the
RFC, the C2SP signed-note and tlog-checkpoint specs and docs/audit-bundle.md, with
hashlib and cryptography only (audit_verify.py imports it).
"""

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(leaf):
    return sha256(b"\x00" + leaf)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


# --- RFC 9162 proofs ---------------------------------------------------------------


def root_from_inclusion(leaf, index, size, proof):
    if index >= size:
        raise ValueError("index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def verify_consistency(size1, size2, proof, root1, root2):
    if size1 == 0 or size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    path = list(proof)
    if not path:
        return False
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


class Tree:
    """The root of a growing tree: a stack of perfect subtrees (the right edge)."""

    def __init__(self):
        self.size = 0
        self.stack = []  # (height, hash)

    def append(self, h):
        node, height = h, 0
        while self.stack and self.stack[-1][0] == height:
            _, left = self.stack.pop()
            node = node_hash(left, node)
            height += 1
        self.stack.append((height, node))
        self.size += 1

    def root(self):
        if not self.stack:
            return sha256(b"")
        r = self.stack[-1][1]
        for _, h in reversed(self.stack[:-1]):
            r = node_hash(h, r)
        return r


# --- checkpoints ------------------------------------------------------------------


def spki_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

def note_key_hash(origin, raw):
    """C2SP signed-note key hash: the first 4 bytes of SHA-256(name || "\n" || 0x01 || key)."""
    return sha256(origin.encode() + b"\n\x01" + raw)[:4]


def raw_key(key):
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def open_checkpoint(note, origin, log_key):
    text, sep, block = note.rpartition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    text += "\n"
    key_hash = note_key_hash(origin, raw_key(log_key))
    ok = False
    for line in block.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise ValueError("malformed signature line")
        name, _, b64 = line[2:].partition(" ")
        blob = base64.b64decode(b64)
        if name == origin and blob[:4] == key_hash:
            log_key.verify(blob[4:], text.encode())  # raises InvalidSignature
            ok = True
    if not ok:
        raise ValueError("no signature by the log key")
    lines = text.split("\n")
    if lines[0] != origin:
        raise ValueError("another log's checkpoint")
    return int(lines[1]), base64.b64decode(lines[2])


# --- log-key hand-overs ------------------------------------------------------------


def vkey_text(origin, key):
    """A C2SP verifier key: origin+hash+base64(0x01 || Ed25519 key)."""
    raw = raw_key(key)
    return "%s+%s+%s" % (origin, note_key_hash(origin, raw).hex(), base64.b64encode(b"\x01" + raw).decode())


def key_from_vkey(origin, text):
    """The Ed25519 key of a C2SP verifier key under `origin`, its hash checked."""
    name, hash_hex, b64 = text.split("+", 2)
    blob = base64.b64decode(b64)
    if name != origin or len(blob) != 33 or blob[0] != 1:
        raise ValueError(f"{text!r} is not an Ed25519 verifier key of {origin}")
    if note_key_hash(origin, blob[1:]).hex() != hash_hex:
        raise ValueError(f"{text!r}: its key hash does not match")
    return ed25519.Ed25519PublicKey.from_public_bytes(blob[1:])


class LogKeys:
    """The log keys in the order they signed: [(hand-over size, key)], the first from 0.
    A checkpoint smaller than a hand-over is the retiring key's, later ones the new key's
    alone, and the hand-over checkpoint itself must carry both signatures."""

    def __init__(self, origin, key):
        self.origin = origin
        self.eras = [(0, key)]

    def texts(self):
        return [vkey_text(self.origin, k) for _, k in self.eras]

    def open(self, note):
        """(size, root) of a checkpoint signed by every key due at its size."""
        opened = None
        for _, key in self.eras:
            try:
                opened = open_checkpoint(note, self.origin, key)
                break
            except (ValueError, InvalidSignature):
                continue
        if opened is None:
            raise ValueError("no signature by a log key of this log")
        size = opened[0]
        due = []
        for i, (start, key) in enumerate(self.eras):
            if i == 0 or start < size:
                due = [key]
            elif start == size:
                due.append(key)
        for key in due:
            opened = open_checkpoint(note, self.origin, key)
        return opened

    def rotation(self, note, leaf, proof, known):
        """The hand-over checkpoint signed by `known` and its log.key_rotated event, proved
        its last leaf: ((size, root), event)."""
        size, root = open_checkpoint(note, self.origin, known)
        event = json.loads(leaf)
        if event.get("type") != "log.key_rotated" or event.get("size") != size or size == 0:
            raise ValueError("the leaf is not the log.key_rotated event of this checkpoint")
        if root_from_inclusion(leaf_hash(leaf), size - 1, size, proof) != root:
            raise ValueError("the log.key_rotated event is not the checkpoint's last leaf")
        return (size, root), event

    def other(self, note, text, key_id):
        """The hand-over's other key: a fresh key of this log, with that id, that signed it."""
        key = key_from_vkey(self.origin, text)
        if hashlib.sha256(spki_der(key)).hexdigest() != key_id:
            raise ValueError(f"the key id {key_id} is not that of {text}")
        if text in self.texts():
            raise ValueError(f"{text} is already a key of this log")
        open_checkpoint(note, self.origin, key)
        return key

    def forward(self, note, leaf, proof):
        current = self.eras[-1][1]
        (size, _), event = self.rotation(note, leaf, proof, current)
        if size <= self.eras[-1][0]:
            raise ValueError(f"a hand-over at {size} cannot follow the one at {self.eras[-1][0]}")
        if event["old_key"] != vkey_text(self.origin, current):
            raise ValueError("the event hands over another key than the one trusted")
        if event["new_key_hash"] != event["new_key"].split("+")[1]:
            raise ValueError("the new key hash recorded is not the new key's")
        self.eras.append((size, self.other(note, event["new_key"], event["new_key_id"])))

    def backward(self, note, leaf, proof):
        first = self.eras[0][1]
        (size, _), event = self.rotation(note, leaf, proof, first)
        if len(self.eras) > 1 and size >= self.eras[1][0]:
            raise ValueError(f"a hand-over at {size} cannot precede the one at {self.eras[1][0]}")
        if event["new_key"] != vkey_text(self.origin, first):
            raise ValueError("the event hands over to another key than the one trusted")
        old = self.other(note, event["old_key"], event["old_key_id"])
        self.eras[0] = (size, first)
        self.eras.insert(0, (0, old))
