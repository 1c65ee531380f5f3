"""Write N DSSE envelopes (JSON Lines) signed with securesystemslib, for benchmarks.

usage: make_envelopes.py PRIVATE_PEM N OUT.jsonl
"""

import base64
import json
import sys

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

key_path, count, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(key_path, "rb") as f:
    private_key = load_pem_private_key(f.read(), password=None)
    signer = CryptoSigner(private_key)

# The order n of P-256. custody accepts only low-S ECDSA signatures (s <= n/2); OpenSSL
# emits either, so ECDSA signatures are normalised here as a low-S producer would.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def low_s(envelope: dict) -> dict:
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        return envelope
    for sig in envelope["signatures"]:
        r, s = decode_dss_signature(base64.b64decode(sig["sig"]))
        if s > P256_N // 2:
            sig["sig"] = base64.b64encode(encode_dss_signature(r, P256_N - s)).decode()
    return envelope


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
        out.write(json.dumps(low_s(env.to_dict())) + "\n")
