"""Validate custody's evidence statement about a test report with the in-toto-attestation
Python bindings: the DSSE payload must be an in-toto Statement v1 (strictly parsed and
validated) whose predicate is the test-result predicate v0.1 (strictly parsed).

usage: test_result_validate.py ENVELOPE
Prints the predicate's result and failed tests; exit 0 if valid, 3 if not (a verdict:
Python's own crash exits 1).
"""

import base64
import json
import sys

import google.protobuf.json_format as pb_json
import in_toto_attestation.v1.statement_pb2 as spb
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2 as tpb
from in_toto_attestation.v1.statement import Statement

TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


def main() -> int:
    with open(sys.argv[1], "rb") as f:
        envelope = json.load(f)
    payload = base64.b64decode(envelope["payload"]).decode()
    try:
        proto = pb_json.Parse(payload, spb.Statement())
        Statement.copy_from_pb(proto).validate()
        if proto.predicate_type != TEST_RESULT:
            raise ValueError(f"predicateType is {proto.predicate_type}, not {TEST_RESULT}")
        # Strict: a field the predicate does not define is an error.
        predicate = json.loads(payload)["predicate"]
        result = pb_json.ParseDict(predicate, tpb.TestResult())
        if result.result not in ("PASSED", "WARNED", "FAILED"):
            raise ValueError(f"result is {result.result!r}")
        if not result.configuration:
            raise ValueError("no configuration names the report")
    except (ValueError, pb_json.ParseError) as e:
        print(f"in-toto-attestation: invalid test-result statement: {e}", file=sys.stderr)
        return 3
    print(result.result)
    for name in result.failed_tests:
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
