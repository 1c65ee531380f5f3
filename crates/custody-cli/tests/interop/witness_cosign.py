#!/usr/bin/env python3
"""A witness, from the C2SP tlog-cosignature spec alone (Ed25519, cosignature/v1):

    witness_cosign.py WITNESS_KEY.pem NAME TIMESTAMP NOTE_FILE

prints the checkpoint note with this witness's cosignature line added. The key id is
SHA-256(name || "\\n" || 0x04 || public key)[:4]; the signature, over
"cosignature/v1\\ntime <timestamp>\\n" and the checkpoint body, follows the key id and the
big-endian 64-bit timestamp.
"""

import base64
import hashlib
import struct
import sys

from cryptography.hazmat.primitives import serialization

key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
name, timestamp = sys.argv[2], int(sys.argv[3])
note = open(sys.argv[4], encoding="utf-8").read()
body = note[: note.rindex("\n\n") + 1]
public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
key_id = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
signature = key.sign(b"cosignature/v1\ntime %d\n" % timestamp + body.encode())
blob = key_id + struct.pack(">Q", timestamp) + signature
sys.stdout.write(note + "\u2014 %s %s\n" % (name, base64.b64encode(blob).decode()))
