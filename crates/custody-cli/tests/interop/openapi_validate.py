"""Validate an OpenAPI document with openapi-spec-validator.

usage: openapi_validate.py DOCUMENT_JSON
Exit 0 if it is a valid OpenAPI 3.x document, 1 with the first problem otherwise.
"""

import json
import sys

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


def main() -> int:
    with open(sys.argv[1], "rb") as f:
        document = json.load(f)
    try:
        validate(document)
    except OpenAPIValidationError as e:
        print(f"invalid OpenAPI document: {e}", file=sys.stderr)
        return 3
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
