"""Write N DSSE envelopes (JSON Lines) signed with securesystemslib, for benchmarks.

usage: make_envelopes.py PRIVATE_PEM N OUT.jsonl
"""

import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

key_path, count, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(key_path, "rb") as f:
    signer = CryptoSigner(load_pem_private_key(f.read(), password=None))
with open(out_path, "w") as out:
    for i in range(count):
        payload = json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": f"artifact-{i}", "digest": {"sha256": f"{i:064x}"}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {"buildDefinition": {"buildType": "https://example.com/b"}},
            }
        ).encode()
        env = Envelope(payload=payload, payload_type="application/vnd.in-toto+json", signatures={})
        env.sign(signer)
        out.write(json.dumps(env.to_dict()) + "\n")
