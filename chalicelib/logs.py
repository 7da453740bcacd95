"""Structured JSON logs (Powertools Logger) that never carry personal data.

Every record passes through a formatter that masks email addresses and bearer
keys wherever they appear (message or extra keys), so a careless log line cannot
leak them. Request handlers add ``tenant_id`` and ``request_id``.
"""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import PowertoolsLogRecord

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_API_KEY = re.compile(r"sgk_[A-Za-z0-9_-]{8,}")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")


def scrub(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _API_KEY.sub("[key]", text)
    return _BEARER.sub(r"\1[key]", text)


class ScrubbingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: dict[str, Any] | PowertoolsLogRecord) -> str:
        return scrub(super().serialize(log))


logger = Logger(service="segments", logger_formatter=ScrubbingFormatter())
