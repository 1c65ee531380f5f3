"""Sign a payload into a DSSE envelope with securesystemslib.

usage: sslib_sign.py PRIVATE_PEM PAYLOAD_TYPE PAYLOAD_FILE  (envelope JSON on stdout)
"""

import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner


def main() -> int:
    key_path, payload_type, payload_path = sys.argv[1:4]
    with open(key_path, "rb") as f:
        signer = CryptoSigner(load_pem_private_key(f.read(), password=None))
    with open(payload_path, "rb") as f:
        payload = f.read()
    envelope = Envelope(payload=payload, payload_type=payload_type, signatures={})
    envelope.sign(signer)
    json.dump(envelope.to_dict(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
