"""Parses custody's /metrics (read from stdin) with the Prometheus project's own Python
client, as an OpenMetrics exposition, and prints every sample as JSON:
[{"name": …, "labels": {…}, "value": …}, …]. A malformed exposition raises, exit 1."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append({"name": s.name, "labels": s.labels, "value": s.value})
json.dump(samples, sys.stdout)
