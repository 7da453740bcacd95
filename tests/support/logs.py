"""Read what the service's JSON logger writes, as parsed records."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator

from chalicelib.logs import logger


@contextlib.contextmanager
def captured_log_records() -> Iterator[list[dict]]:
    handler = logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)
    records: list[dict] = []
    try:
        yield records
    finally:
        handler.setStream(previous)
        records.extend(json.loads(line) for line in stream.getvalue().splitlines() if line.strip())
