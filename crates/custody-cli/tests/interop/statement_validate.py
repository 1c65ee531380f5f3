"""Validate an in-toto Statement v1 with the in-toto-attestation Python bindings.

usage: statement_validate.py STATEMENT_JSON
Exit 0 if the statement parses into the Statement proto and passes validate(), else 3
(a verdict: Python's own crash exits 1).
"""

import sys

import google.protobuf.json_format as pb_json
import in_toto_attestation.v1.statement_pb2 as spb
from in_toto_attestation.v1.statement import Statement


def main() -> int:
    with open(sys.argv[1], "rb") as f:
        text = f.read().decode()
    try:
        # Strict parse: an unknown field or a wrongly typed one is an error.
        proto = pb_json.Parse(text, spb.Statement())
        Statement.copy_from_pb(proto).validate()
    except (ValueError, pb_json.ParseError) as e:
        print(f"in-toto-attestation: invalid statement: {e}", file=sys.stderr)
        return 3
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
