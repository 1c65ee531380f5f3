#!/usr/bin/env python3
"""An independent verifier of custody audit bundles, written from docs/audit-bundle.md
alone with ordinary libraries: tarfile, hashlib, json, tomllib, rfc8785 and cryptography.

    audit_verify.py BUNDLE LOG_KEY.pem [--json] [--checkpoint FILE] [--min-size N]

Exit 0 if every check passes, 1 if one fails (each failure names its entry and check),
2 if the bundle cannot be read. It checks what the format documents: the checkpoints'
signatures and consistency, every entry's place in the signed tree and its leaf, the
policy versions (the key history), every envelope against the keys in force at its
ledger index, the decisions' facts against their digests, confidential rationales
against their commitments, every raw report an evidence entry names (there, hashing to
its name, of the recorded size), and every certification's lineage; and, given a checkpoint
the auditor kept or a minimum size, that the anchor extends it (truncation). A bundle
exported after the log key was rotated carries each hand-over (its checkpoint signed by
the retiring and the new key, with its log.key_rotated event proved its last leaf): they
are followed from the key given, old or new, and every checkpoint must be signed by the
key in force at its size (both at a hand-over). Unlike
`custody audit verify`, it does not re-run custody's policy engine on the facts.
"""

import argparse
import base64
import hashlib
import hmac
import json
import struct
import sys
import tarfile
import tomllib
from datetime import datetime

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from tlog import (
    LogKeys,
    Tree,
    leaf_hash,
    root_from_inclusion,
    sha256,
    spki_der,
    verify_consistency,
    vkey_text,
)

FORMAT = "custody-audit-bundle/v1"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Unusable(Exception):
    pass


# --- keys, envelopes --------------------------------------------------------


def key_ids(key):
    """custody's key id (SHA-256 of the SPKI DER) and securesystemslib's."""
    ids = {hashlib.sha256(spki_der(key)).hexdigest()}
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
        doc = '{"keytype":"ed25519","keyval":{"public":"%s"},"scheme":"ed25519"}' % raw
        ids.add(hashlib.sha256(doc.encode()).hexdigest())
    else:
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        doc = json.dumps({"keytype": "ecdsa", "keyval": {"public": pem}, "scheme": "ecdsa-sha2-nistp256"},
                         separators=(",", ":"), sort_keys=True)
        ids.add(hashlib.sha256(doc.encode()).hexdigest())
    return ids


def b64decode_any(text):
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except Exception:
        return base64.urlsafe_b64decode(padded)


def verify_sig(key, message, sig):
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
            return True
        if len(sig) == 64:
            r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        else:
            r, s = decode_dss_signature(sig)
        if s > P256_N // 2:
            return False  # custody accepts only low-S
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def dsse_verify(envelope, keys):
    """The key ids of `keys` whose signature on the envelope verifies; the payload."""
    payload = b64decode_any(envelope["payload"])
    message = pae(envelope["payloadType"], payload)
    good = []
    for s in envelope.get("signatures", [])[:64]:
        try:
            sig = b64decode_any(s["sig"])
        except Exception:
            continue
        for key_id, key in keys.items():
            if key_id not in good and verify_sig(key, message, sig):
                good.append(key_id)
                break
    return good, payload


def envelope_digest(envelope):
    """SHA-256 of the envelope's compact JSON (fields in the order custody writes them)."""
    sigs = []
    for s in envelope["signatures"]:
        d = {}
        if "keyid" in s:
            d["keyid"] = s["keyid"]
        d["sig"] = s["sig"]
        sigs.append(d)
    doc = {"payload": envelope["payload"], "payloadType": envelope["payloadType"], "signatures": sigs}
    return "sha256:" + hashlib.sha256(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def policy_keys(files):
    """(release keys, builder keys, personal keys) a policy bundle trusts, by custody key id."""
    doc = tomllib.loads(files["custody.toml"])
    def load(path):
        k = serialization.load_pem_public_key(files[path].encode())
        return hashlib.sha256(spki_der(k)).hexdigest(), k
    release = dict(load(k["path"]) for k in doc.get("release_key", []))
    builders = dict(load(b["key"]) for b in doc.get("builder", []))
    people = dict(load(p["path"]) for p in doc.get("person_key", []))
    return release, builders, people


def policy_digest(files):
    h = hashlib.sha256()
    for path in sorted(files):
        p, t = path.encode(), files[path].encode()
        h.update(struct.pack(">Q", len(p)) + p + struct.pack(">Q", len(t)) + t)
    return "sha256:" + h.hexdigest()


def unix(ts):
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())


def stamp(ts):
    """An RFC 3339 time (UTC, as custody writes it) as (seconds, nanoseconds): exact to compare."""
    base, _, frac = ts.rstrip("Z").partition(".")
    return (unix(base + "Z"), int((frac + "000000000")[:9]))


# --- the verifier ------------------------------------------------------------------


class Verifier:
    def __init__(self, log_key, kept_note=None, min_size=None):
        self.log_key = log_key
        self.kept_note, self.min_size = kept_note, min_size
        self.kept = None  # (size, root) of the auditor's checkpoint, once opened
        self.root_at_kept = None  # complete bundles: the entries' root at its size
        self.proofs = {}
        self.failures = []
        self.handovers = []  # the sizes of the log-key hand-overs followed
        self.checked = {"checkpoints": 0, "consistency_proofs": 0, "entries": 0, "signatures": 0, "certifications": 0}
        self.checkpoints = []  # (size, root) verified
        self.policies = []  # (index, digest, release keys, builder keys, personal keys)
        self.attestors = []
        self.tree = Tree()
        self.next_cp = 0
        self.last = None
        self.broken = False
        self.matched = 0
        self.rec = {k: {} for k in ("artifact", "release", "promotion", "decision", "approval")}
        self.evidence = {}
        self.reports = {}  # hex SHA-256 of each raw report named -> [(entry, size)]
        self.signed_since = None  # the first evidence entry with a statement of its reading
        self.tokens = {}  # token id -> (principal, creator, personal) from token.created
        self.rotations = []  # (index, purpose, from key id, to key id, to key) from key.rotated
        self.revocations = []  # (index, key id, cutoff stamp) from key.revoked, one per key
        self.certs = []

    def fail(self, entry, check, detail):
        self.failures.append({"entry": entry, "check": check, "detail": detail})

    def keys_at(self, keys, purpose, index, at):
        """`keys` (a policy's, by key id) as the key.rotated hand-overs before `index` left them,
        without those a key.revoked before `index` cut off at or before `at` (what the entry
        records happened then), and without personal keys revoked before `index` at all (a
        personal statement is recorded as it is made: after the revocation, whatever its time)."""
        keys = dict(keys)
        for where, p, old, new, key in self.rotations:
            if where < index and p == purpose and old in keys:
                del keys[old]
                keys[new] = key
        when = stamp(at)
        for where, key, cutoff in self.revocations:
            if where < index and key in keys and (cutoff <= when or purpose == "personal-approval"):
                del keys[key]
        return keys

    def policy_at(self, index):
        found = None
        for p in self.policies:
            if p[0] < index:
                found = p
        return found

    def run(self, path):
        try:
            tar = tarfile.open(path, "r:")
            members = [m for m in tar]
        except Exception as e:
            raise Unusable(f"not a tar archive: {e}")
        names = [m.name for m in members]
        fixed = ["bundle.json", "checkpoints.jsonl", "consistency.jsonl", "keys.json"]
        if names[:4] != fixed or any(not m.isfile() for m in members):
            raise Unusable(f"members {names[:4]} are not a bundle's")
        read = lambda m: tar.extractfile(m).read()
        self.manifest = json.loads(read(members[0]))
        if self.manifest.get("format") != FORMAT:
            raise Unusable("not a custody-audit-bundle/v1")
        self.origin, self.anchor, self.complete = self.manifest["origin"], self.manifest["anchor"], self.manifest["complete"]
        self.keys = LogKeys(self.origin, self.log_key)
        self.read_checkpoints(read(members[1]))
        if self.kept_note is not None:
            # With the key in force at its size, once the bundle's hand-overs are followed.
            try:
                self.kept = self.keys.open(self.kept_note)
            except Exception as e:
                self.fail(None, "pinned-checkpoint", f"the checkpoint you kept does not verify with the log key: {e!r}")
        self.read_consistency(read(members[2]))
        for pem in json.loads(read(members[3]))["attestors"]:
            self.attestors.append(serialization.load_pem_public_key(pem.encode()))
        files, reports, ended, last_report = 0, 0, False, None
        for m in members[4:]:
            if ended:
                raise Unusable(f"{m.name} follows end.json")
            if m.name == "end.json":
                end = json.loads(read(m))
                if end != {"entries": self.checked["entries"], "files": files, "reports": reports}:
                    self.fail(None, "trailer", "end.json does not count the entries and reports in the bundle")
                ended = True
            elif m.name.startswith("reports/sha256/"):
                hexname = m.name[len("reports/sha256/"):]
                reports += 1
                if len(hexname) != 64 or any(c not in "0123456789abcdef" for c in hexname):
                    self.fail(None, "format", f"{m.name}: not a report's name")
                    last_report = last_report or ""
                    continue
                if last_report is not None and hexname <= last_report:
                    self.fail(None, "format", f"{m.name}: out of order, or there twice")
                    if hexname == last_report:
                        continue
                last_report = hexname
                self.raw_report(m.name, hexname, read(m))
            elif last_report is not None:
                raise Unusable(f"{m.name} follows the reports")
            elif m.name == "entries/%06d.jsonl" % files:
                lines = read(m).split(b"\n")
                if lines and not lines[-1]:
                    lines.pop()  # the newline that ends the last line
                for n, line in enumerate(lines):
                    # A blank line is no entry: it fails to read, like any unreadable line.
                    self.entry_line(m.name, n + 1, line)
                files += 1
            else:
                raise Unusable(f"unexpected member {m.name}")
        if not ended:
            self.fail(None, "trailer", "the bundle ends without end.json")
        for hexname, named in self.reports.items():
            for i, _ in named:
                self.fail(i, "report", f"the report sha256:{hexname} it names is not in the bundle")
        following = 0 if self.last is None else self.last + 1
        if self.complete and following < self.anchor:
            self.fail(following, "entry-order", "entries are missing")
        self.lineage()
        self.truncation()

    def raw_report(self, name, hexname, data):
        # Each named by the SHA-256 of its bytes; every evidence entry whose leaf records
        # what custody read (`report`) names one, of that size.
        named = self.reports.pop(hexname, [])
        if hashlib.sha256(data).hexdigest() != hexname:
            self.fail(named[0][0] if named else None, "report", f"{name} does not hash to its name")
            return
        if not named:
            self.fail(None, "report", f"{name}: no entry names it, and an export carries only named reports")
        for i, size in named:
            if size != len(data):
                self.fail(i, "report", f"{name} is not of the size its entry recorded")

    def truncation(self):
        """The anchor against what the auditor kept: at least min_size entries, and
        consistent with their checkpoint (the same root at its size, recomputed from a
        complete bundle's entries or signed by one of the bundle's checkpoints, or a
        consistency proof from it to the anchor in consistency.jsonl)."""
        if self.min_size is not None and self.anchor < self.min_size:
            self.fail(None, "min-size", f"the anchor has {self.anchor} entries, fewer than {self.min_size}")
        if self.kept is None:
            return
        size, root = self.kept
        bad = lambda why: self.fail(None, "pinned-checkpoint", why)
        if self.anchor_root is None:
            bad("the anchor did not verify")
        elif size > self.anchor:
            bad(f"the anchor has {self.anchor} entries, fewer than the kept checkpoint's {size}: cut off")
        elif size == 0:
            pass
        elif size == self.anchor:
            if root != self.anchor_root:
                bad("the anchor has another root than the kept checkpoint: a fork")
        elif size in dict(self.checkpoints):
            if dict(self.checkpoints)[size] != root:
                bad(f"the bundle's checkpoint of {size} entries has another root: a fork")
        elif self.root_at_kept is not None:
            if self.root_at_kept != root:
                bad(f"the entries give another root at {size} entries: a fork")
        elif (size, self.anchor) not in self.proofs:
            bad(f"no consistency proof from {size} to the anchor")
        elif not verify_consistency(size, self.anchor, self.proofs[(size, self.anchor)], root, self.anchor_root):
            bad(f"the anchor is not consistent with the kept checkpoint of {size} entries")

    def follow_handovers(self, lines):
        """Follows the log-key hand-overs the checkpoint lines carry from the key the
        auditor brings: those up to the one that introduced it backwards (its key signed
        that hand-over), the later ones forwards. Returns False on the first that fails."""
        handovers = [c for c in lines if isinstance(c, dict) and c.get("handover") is not None]
        trusted = vkey_text(self.origin, self.log_key)
        split = 0
        for i, c in enumerate(handovers):
            try:
                if json.loads(c["handover"]["leaf"]).get("new_key") == trusted:
                    split = i + 1
                    break
            except (ValueError, AttributeError):
                continue
        steps = [(c, True) for c in reversed(handovers[:split])] + [(c, False) for c in handovers[split:]]
        for c, backwards in steps:
            h = c["handover"]
            try:
                proof = [bytes.fromhex(x) for x in h["proof"]]
                step = self.keys.backward if backwards else self.keys.forward
                step(c["note"], h["leaf"].encode(), proof)
            except Exception as e:
                self.fail(None, "checkpoint-signature", f"the log-key hand-over at {c.get('size')} entries: {e!r}")
                return False
        self.handovers = [c["size"] for c in handovers]
        return True

    def read_checkpoints(self, data):
        lines = [json.loads(line) for line in data.splitlines() if line]
        self.follow_handovers(lines)
        for c in lines:
            try:
                size, root = self.keys.open(c["note"])
                if size != c["size"]:
                    raise ValueError("size differs")
            except Exception as e:
                self.fail(None, "checkpoint-signature", f"checkpoint {c.get('size')}: {e!r}")
                continue
            self.checked["checkpoints"] += 1
            if self.checkpoints and self.checkpoints[-1][0] >= size:
                self.fail(None, "format", "checkpoints out of order")
                continue
            self.checkpoints.append((size, root))
        self.anchor_root = self.checkpoints[-1][1] if self.checkpoints and self.checkpoints[-1][0] == self.anchor else None
        if self.anchor and self.anchor_root is None:
            self.fail(None, "checkpoint-signature", "no verified anchor checkpoint")

    def read_consistency(self, data):
        proofs = self.proofs
        for line in data.splitlines():
            if line:
                p = json.loads(line)
                proofs[(p["from"], p["to"])] = [bytes.fromhex(h) for h in p["hashes"]]
        for (a, ra), (b, rb) in zip(self.checkpoints, self.checkpoints[1:]):
            proof = proofs.get((a, b))
            if proof is None or not verify_consistency(a, b, proof, ra, rb):
                self.fail(None, "consistency", f"checkpoint {b} is not consistent with checkpoint {a}")
            else:
                self.checked["consistency_proofs"] += 1

    def entry_line(self, member, n, raw):
        try:
            line = json.loads(raw)
            index, stated, leaf = line["index"], bytes.fromhex(line["leaf_hash"]), line["leaf"].encode()
        except Exception as e:
            self.fail(None, "format", f"{member} line {n}: {e!r}")
            return
        self.checked["entries"] += 1
        sound = True
        if self.last is not None and index <= self.last:
            self.fail(index, "entry-order", "out of order")
            self.broken = True
            return
        expected = 0 if self.last is None else self.last + 1
        self.last = index
        if self.complete and index != expected:
            # Every gap is named; after the first the recomputed roots mean nothing.
            self.fail(expected, "entry-order", "entries are missing")
            self.broken = True
        if self.complete and not self.broken:
            self.tree.append(stated)
            if self.kept is not None and self.tree.size == self.kept[0]:
                self.root_at_kept = self.tree.root()
            while self.next_cp < len(self.checkpoints) and self.checkpoints[self.next_cp][0] <= self.tree.size:
                size, root = self.checkpoints[self.next_cp]
                self.next_cp += 1
                if size == self.tree.size and self.tree.root() != root:
                    self.fail(None, "root", f"checkpoint {size}: the entries give another root (altered after entry {self.matched})")
                    self.broken = True
                elif size == self.tree.size:
                    self.matched = size
        elif not self.complete:
            proof = line.get("proof") or {}
            try:
                ok = (self.anchor_root is not None and proof.get("tree_size") == self.anchor and
                      root_from_inclusion(stated, index, self.anchor, [bytes.fromhex(h) for h in proof["hashes"]]) == self.anchor_root)
            except Exception:
                ok = False
            if not ok:
                self.fail(index, "inclusion", "its inclusion proof does not lead to the anchor's root")
                sound = False
        if leaf_hash(leaf) != stated:
            self.fail(index, "leaf-hash", "its leaf does not hash to its stated leaf hash")
            sound = False
        try:
            event = json.loads(leaf)
        except Exception:
            self.fail(index, "event", "its leaf is not JSON")
            return
        if sound:
            self.event(index, event, line)

    def credential(self, i, e):
        # An entry made with a token claims who created it and whether it is its holder's
        # own: the ledger's token.created entry says so too.
        auth = e.get("auth") or {}
        if auth.get("method") != "token":
            return
        issued = self.tokens.get(auth.get("token"))
        if issued is None:
            self.fail(i, "credential", "made with a token no token.created entry made")
        elif (issued[0] != e.get("actor") or ("created_by" in auth and auth["created_by"] != issued[1])
              or (issued[2] is not None and issued[2] != auth.get("personal", False))):
            self.fail(i, "credential", "its token's creator or personal flag differs from the ledger's")

    def event(self, i, e, line):
        kind = e.get("type")
        policy = self.policy_at(i)
        self.credential(i, e)
        if kind == "key.revoked":
            cutoff = stamp(e["at"])
            if e.get("compromised_since"):
                cutoff = min(cutoff, stamp(e["compromised_since"]))
            for key in [k["key"] for k in e.get("keys", [])] + e.get("successors", []):
                self.revocations.append((i, key, cutoff))
        if kind == "key.rotated":
            key = serialization.load_pem_public_key(e["public_key"].encode())
            self.rotations.append((i, e["purpose"], e["from"], e["to"], key))
        if kind == "token.created":
            self.tokens.setdefault(e["token"], (e["principal"], e["actor"], e.get("personal")))
        if "facts" in line and kind != "decision.recorded":
            self.fail(i, "format", "facts beside a leaf that is not a decision")
        if kind == "policy.applied":
            if policy_digest(e["files"]) != e["policy"]:
                self.fail(i, "policy", "the files do not digest to the policy's digest")
            try:
                release, builders, people = policy_keys(e["files"])
            except Exception as x:
                self.fail(i, "policy", f"the policy's keys: {x!r}")
                release, builders, people = {}, {}, {}
            self.policies.append((i, e["policy"], release, builders, people))
        elif kind == "artifact.registered":
            key = None
            if e.get("provenance") is not None:
                good, payload = dsse_verify(e["provenance"], self.keys_at(policy[3], "builder", i, e["at"]) if policy else {})
                statement = json.loads(payload) if good else {}
                subjects = {"sha256:" + s["digest"].get("sha256", "") for s in statement.get("subject", [])}
                builder = statement.get("predicate", {}).get("runDetails", {}).get("builder", {}).get("id")
                if not good or e["artifact"]["digest"] not in subjects or builder != e.get("builder_id"):
                    self.fail(i, "provenance", "its provenance is not signed by a builder key in force, about it")
                else:
                    key = good[0]
                    self.checked["signatures"] += 1
            self.rec["artifact"][e["artifact"]["digest"]] = (i, key)
        elif kind == "release.created":
            m = e["manifest"]
            payload = b64decode_any(m["payload"])
            if "sha256:" + hashlib.sha256(payload).hexdigest() != e["digest"] or envelope_digest(m) != e["manifest_digest"]:
                self.fail(i, "manifest", "its digests do not match its manifest")
            trusted = dsse_verify(m, self.keys_at(policy[2], "release-signer", i, e["at"]) if policy else {})[0] if m["signatures"] else []
            self.checked["signatures"] += bool(trusted)
            self.rec["release"][e["release"]] = (i, e["digest"], e["artifacts"], m, trusted)
        elif kind == "evidence.attached":
            if e.get("statement") is not None:
                self.evidence_statement(i, e)
            if e.get("report") is not None and e["evidence"].startswith("sha256:"):
                self.reports.setdefault(e["evidence"][len("sha256:"):], []).append((i, e["report"]["size"]))
                # Once custody signs its reading of reports, it signs every one.
                if e.get("statement") is not None and self.signed_since is None:
                    self.signed_since = i
                elif e.get("statement") is None and self.signed_since is not None:
                    self.fail(i, "evidence", "it records reading a report but carries no evidence statement")
            self.evidence.setdefault(e["artifacts"][0], []).append((i, e["kind"], unix(e["at"])))
        elif kind == "promotion.requested":
            self.statement_missing(i, e, e.get("statement") is not None)
            if e.get("statement") is not None:
                self.break_glass_statement(i, e, self.keys_at(policy[4], "personal-approval", i, e["at"]) if policy else {})
            self.rec["promotion"][e["promotion"]] = (i, e["release"], e["environment"], e["actor"])
        elif kind == "decision.recorded":
            self.decision(i, e, line.get("facts"))
        elif kind == "approval.recorded":
            self.statement_missing(i, e, e.get("statement") is not None or e["confidential"])
            if e.get("statement") is not None:
                self.approval_statement(i, e, self.keys_at(policy[4], "personal-approval", i, e["at"]) if policy else {})
            text = line.get("rationale") if e["confidential"] else e["rationale"]
            if text is not None:
                if "rationale_commitment" in e:
                    # HMAC-SHA-256 keyed with the salt that travels beside the rationale.
                    salt = bytes.fromhex(line.get("rationale_salt") or "")
                    mac = hmac.new(salt, text.encode(), hashlib.sha256).hexdigest()
                    opened = e["rationale_commitment"] == "hmac-sha256:" + mac
                else:
                    opened = "sha256:" + hashlib.sha256(text.encode()).hexdigest() == e.get("rationale_digest")
                if not opened:
                    self.fail(i, "rationale", "its rationale does not match its commitment")
            elif not (e["confidential"] and line.get("withheld")):
                self.fail(i, "rationale", "its rationale is missing")
            self.rec["approval"][e["approval"]] = (i, e["actor"], e["verdict"] == "approve")
        elif kind == "environment.certified":
            self.certs.append((i, e))

    def approval_statement(self, i, e, people):
        # The reviewer's signed statement: by a personal key the policy enrols, naming this
        # approver, promotion, release, environment, policy, verdict and rationale.
        ok = envelope_digest(e["statement"]) == e.get("statement_digest")
        good, payload = dsse_verify(e["statement"], people)
        if ok and good:
            s = json.loads(payload)
            p = s["predicate"]
            ok = (s["predicateType"] == "https://custody.dev/approval/v1" and p.get("kind") == "promotion"
                  and p.get("approver") == e["actor"] and p.get("promotion") == e["promotion"]
                  and p.get("release") == e["release"] and p.get("environment") == e["environment"]
                  and p.get("policy") == e["policy"] and p.get("verdict") == e["verdict"]
                  and p.get("risk") == e["risk"]
                  and (e.get("rationale") is None or p.get("rationale") == e["rationale"])
                  and ["sha256:" + x["digest"].get("sha256", "") for x in s["subject"]][:1] == [e["release_digest"]])
        else:
            ok = False
        if ok:
            self.checked["signatures"] += 1
        else:
            self.fail(i, "approval", "its signed approval is not this approver's, by an enrolled key, of this promotion")

    def statement_missing(self, i, e, kept):
        # An entry a personal key made carries the statement it signed (a confidential
        # review keeps none in its leaf).
        if not kept and (e.get("auth") or {}).get("method") == "personal-key":
            self.fail(i, "approval", "a personal key made it, but it carries no signed statement")

    def break_glass_statement(self, i, e, people):
        # The requester's signed break-glass: by a personal key the policy enrols, naming
        # this requester, release, environment and reason.
        good, payload = dsse_verify(e["statement"], people)
        ok = bool(good)
        if ok:
            s = json.loads(payload)
            p = s["predicate"]
            ok = (s["predicateType"] == "https://custody.dev/approval/v1" and p.get("kind") == "break-glass"
                  and p.get("approver") == e["actor"] and p.get("release") == e["release"]
                  and p.get("environment") == e["environment"] and p.get("verdict") == "approve"
                  and p.get("rationale") == e.get("break_glass"))
        if ok:
            self.checked["signatures"] += 1
        else:
            self.fail(i, "approval", "its signed break-glass is not this requester's, by an enrolled key, of this release and environment")

    def attestor_named_by(self, envelope):
        named = {}
        hints = {s.get("keyid") for s in envelope["signatures"]}
        for k in self.attestors:
            if key_ids(k) & hints:
                named[hashlib.sha256(spki_der(k)).hexdigest()] = k
        return named

    def evidence_statement(self, i, e):
        # custody's statement of what it read: signed by the attestor it names, about this
        # artifact, naming this report.
        good, payload = dsse_verify(e["statement"], self.attestor_named_by(e["statement"]))
        ok = bool(good)
        if ok:
            s = json.loads(payload)
            subjects = ["sha256:" + x["digest"]["sha256"] for x in s["subject"]]
            p = s["predicate"]
            if s["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1":
                named = p["configuration"][0]["digest"]["sha256"]
            else:
                named = p.get("report", {}).get("digest", {}).get("sha256")
            ok = subjects == e["artifacts"] and "sha256:" + str(named) == e["evidence"]
            read = e.get("report")
            if ok and read is not None:
                # What the leaf says custody read is what the statement signs.
                if s["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1":
                    t = read["summary"].get("tests") or {}
                    failed = t.get("failed", 0) + t.get("errored", 0) > 0
                    conf = p["configuration"][0]
                    ok = (p.get("result") == ("FAILED" if failed else "PASSED")
                          and conf.get("name") == f"{e['kind']} ({e['format']})"
                          and conf.get("mediaType") == read["media_type"])
                else:
                    r = p.get("report", {})
                    ok = (p.get("summary") == read["summary"] and r.get("size") == read["size"]
                          and r.get("mediaType") == read["media_type"]
                          and p.get("type") == e["kind"] and p.get("format") == e["format"])
        if not ok:
            self.fail(i, "evidence", "its evidence statement is not signed by the attestor it names, about this artifact and report")
        else:
            self.checked["signatures"] += 1

    def decision(self, i, e, facts):
        if envelope_digest(e["vsa"]) != e["vsa_digest"]:
            self.fail(i, "vsa", "its vsa_digest does not match")
        good, payload = dsse_verify(e["vsa"], self.attestor_named_by(e["vsa"]))
        ok = bool(good)
        if ok:
            s = json.loads(payload)
            subjects = sorted("sha256:" + x["digest"]["sha256"] for x in s["subject"])
            p = s["predicate"]
            ok = (s["predicateType"] == "https://slsa.dev/verification_summary/v1" and subjects == sorted(e["artifacts"])
                  and p["verificationResult"] == ("PASSED" if e["allowed"] else "FAILED")
                  and "sha256:" + p["policy"]["digest"]["sha256"] == e["policy"]
                  # A VSA marked as break-glass belongs to a break-glass decision.
                  and ("CUSTODY_BREAK_GLASS" not in p.get("verifiedLevels", []) or e.get("break_glass") is not None))
        if not ok:
            self.fail(i, "vsa", "its VSA is not signed by the attestor it names, about this decision")
        else:
            self.checked["signatures"] += 1
        if facts is None:
            self.fail(i, "decision", "its facts are not in the bundle")
        elif "sha256:" + hashlib.sha256(rfc8785.dumps(facts)).hexdigest() != e["input"]:
            self.fail(i, "decision", "its facts do not match the recorded input digest")
            facts = None
        self.rec["decision"][e["decision"]] = (i, e, facts)

    def lineage(self):
        for i, c in self.certs:
            self.checked["certifications"] += 1
            bad = lambda why: self.fail(i, "lineage", why)
            d = self.rec["decision"].get(c["decision"])
            if not d or d[0] >= i:
                bad("its decision is not in the bundle")
                continue
            di, de, facts = d
            if not de["allowed"] or de["environment"] != c["environment"] or de["release"] != c["release"]:
                bad("its decision does not allow it")
            p = self.rec["promotion"].get(c["promotion"])
            if not p or p[0] >= di or p[1] != c["release"] or p[2] != c["environment"]:
                bad("its promotion is not in the bundle")
            r = self.rec["release"].get(c["release"])
            if not r:
                bad("its release is not in the bundle")
                continue
            for a in r[2]:
                if a not in self.rec["artifact"] or self.rec["artifact"][a][0] >= di:
                    bad(f"artifact {a} is not registered in the bundle")
            if not facts:
                continue
            if facts["release"]["digest"] != r[1]:
                bad("its decision's facts name another release digest")
            key = facts["release"].get("signing_key")
            if key:
                pol = [p for p in self.policies if p[1] == de["policy"]]
                trusted = self.keys_at(pol[0][2], "release-signer", di, de["at"]) if pol else {}
                if key not in trusted or key not in dsse_verify(r[3], {key: trusted[key]})[0]:
                    bad(f"its manifest does not verify with the release key {key} its decision names")
            for fa in facts["release"]["artifacts"]:
                rec = self.rec["artifact"].get(fa["digest"])
                pk = (fa.get("provenance") or {}).get("signing_key")
                if rec and pk and pk != rec[1]:
                    bad(f"the provenance of {fa['name']} is not signed by the key its decision names")
                for ev in fa["evidence"]:
                    if not any(x[0] < di and x[1] == ev["kind"] and x[2] == ev["at"] for x in self.evidence.get(fa["digest"], [])):
                        bad(f"the {ev['kind']} evidence of {fa['name']} is not in the bundle")
            for ap in facts["approvals"]:
                a = self.rec["approval"].get(ap["id"])
                if not a or a[0] >= di or a[1] != ap["by"] or a[2] != ap["approve"]:
                    bad(f"review {ap['id']} is not in the bundle as its decision counted it")


def kept_checkpoint(path):
    """A signed note, or the JSON state `custody log watch` keeps (its "note")."""
    text = open(path, encoding="utf-8").read()
    return json.loads(text)["note"] if text.lstrip().startswith("{") else text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("log_key")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--checkpoint")
    parser.add_argument("--min-size", type=int)
    try:
        args = parser.parse_args()
    except SystemExit:
        return 2
    try:
        log_key = serialization.load_pem_public_key(open(args.log_key, "rb").read())
        kept = kept_checkpoint(args.checkpoint) if args.checkpoint else None
    except Exception as e:
        print(f"error: the log key or kept checkpoint: {e}", file=sys.stderr)
        return 2
    v = Verifier(log_key, kept, args.min_size)
    try:
        v.run(args.bundle)
    except Unusable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a malformed member the checks did not expect
        v.fail(None, "format", repr(e))
    ok = not v.failures
    if args.json:
        print(json.dumps({"ok": ok, "checked": v.checked, "failures": v.failures, "handovers": v.handovers}))
    else:
        for f in v.failures:
            print(f"FAILED entry {f['entry']} [{f['check']}]: {f['detail']}")
        print("ok" if ok else f"{len(v.failures)} check(s) failed", v.checked)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
