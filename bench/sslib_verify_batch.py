"""Verify every envelope of a JSON Lines file with securesystemslib; print envelopes/s.

usage: sslib_verify_batch.py PUB_PEM ENVELOPES.jsonl
Timing covers JSON parsing, Envelope.from_dict and verify, not interpreter start-up.
"""

import json
import sys
import time

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

with open(sys.argv[1], "rb") as f:
    key = SSlibKey.from_crypto(load_pem_public_key(f.read()))
with open(sys.argv[2]) as f:
    lines = f.readlines()
start = time.perf_counter()
for line in lines:
    Envelope.from_dict(json.loads(line)).verify([key], 1)
elapsed = time.perf_counter() - start
print(f"{len(lines) / elapsed:.0f}")
