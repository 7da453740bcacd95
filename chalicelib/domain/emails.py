"""Email address checks and the one normal form used for matching (lower case)."""

from __future__ import annotations

import re

MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def is_valid_email(value: object) -> bool:
    if not isinstance(value, str) or len(value) > MAX_EMAIL_LENGTH:
        return False
    local = value.split("@", 1)[0]
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return _EMAIL.match(value) is not None


def normalise_email(value: str) -> str:
    return value.strip().lower()


def email_domain(value: str) -> str:
    return value.rsplit("@", 1)[1].lower()
