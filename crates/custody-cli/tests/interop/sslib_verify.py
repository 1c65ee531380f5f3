"""Verify a DSSE envelope with securesystemslib, the Python reference implementation.

usage: sslib_verify.py ENVELOPE THRESHOLD PUB_PEM [PUB_PEM ...]
Exit 0 if verified, 3 if verification failed (a verdict: Python's own crash exits 1),
2 on a usage error.
"""

import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    envelope_path, threshold, key_paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    keys = []
    for path in key_paths:
        with open(path, "rb") as f:
            keys.append(SSlibKey.from_crypto(load_pem_public_key(f.read())))
    with open(envelope_path, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    try:
        accepted = envelope.verify(keys, threshold)
    except VerificationError as e:
        print(f"securesystemslib: verification failed: {e}", file=sys.stderr)
        return 3
    print(" ".join(sorted(accepted)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
