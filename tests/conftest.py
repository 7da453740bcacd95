"""Every test runs against a local stage with fake credentials; nothing here starts moto.

Unit tests (tests/unit) need neither moto nor AWS; tests/integration/conftest.py starts the in-process
moto, and tests/e2e starts the local runtime as a subprocess.
"""

from __future__ import annotations

import os

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SEGMENTS_STAGE": "local",
    "POWERTOOLS_METRICS_DISABLED": "true",  # tests/integration/test_metrics.py turns them on to read them
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
