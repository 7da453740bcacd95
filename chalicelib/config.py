"""Runtime configuration, read once from the environment.

| variable | meaning | default |
| --- | --- | --- |
| SEGMENTS_STAGE | local, dev or prod | local |
| SEGMENTS_OPERATOR_KEY | the operator's bearer key | local-operator-key (refused in prod) |
| SEGMENTS_SECRET | seals cursors, unsubscribe and portal tokens | a fixed local value (refused in prod) |
| SEGMENTS_OPERATOR_KEY_SECRET_ARN | deployed: the Secrets Manager secret holding the operator key | unset |
| SEGMENTS_SECRET_ARN | deployed: the secret holding the signing secret (both read at cold start) | unset |
| SEGMENTS_MAX_BODY_BYTES | request bodies larger than this get 413 | 5 MiB |
| SEGMENTS_PUBLIC_URL | base URL used in links we send (unsubscribe) | http://127.0.0.1:$PORT (8000) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

LOCAL_OPERATOR_KEY = "local-operator-key"
LOCAL_SECRET = "local-signing-secret-not-for-production"


class InsecureConfiguration(RuntimeError):
    pass


@dataclass(frozen=True)
class Config:
    stage: str
    operator_key: str
    secret: bytes
    max_body_bytes: int
    public_url: str


def _from_secrets_manager(variable: str) -> str | None:
    """The secret whose ARN the deploy template put in ``variable`` (never the value itself: anyone allowed
    lambda:GetFunctionConfiguration would read it)."""
    arn = os.environ.get(variable)
    if not arn:
        return None
    from aws_lambda_powertools.utilities import parameters  # only deployed functions need the client

    return str(parameters.get_secret(arn))


@lru_cache(maxsize=1)
def get_config() -> Config:
    stage = os.environ.get("SEGMENTS_STAGE", "local")
    operator_key = (
        os.environ.get("SEGMENTS_OPERATOR_KEY") or _from_secrets_manager("SEGMENTS_OPERATOR_KEY_SECRET_ARN")
    ) or LOCAL_OPERATOR_KEY
    secret = (os.environ.get("SEGMENTS_SECRET") or _from_secrets_manager("SEGMENTS_SECRET_ARN")) or LOCAL_SECRET
    if stage == "prod":
        if operator_key == LOCAL_OPERATOR_KEY:
            raise InsecureConfiguration("prod refuses the default operator key: set SEGMENTS_OPERATOR_KEY")
        if secret == LOCAL_SECRET:
            raise InsecureConfiguration("prod refuses the default signing secret: set SEGMENTS_SECRET")
    return Config(
        stage=stage,
        operator_key=operator_key,
        secret=secret.encode("utf-8"),
        max_body_bytes=int(os.environ.get("SEGMENTS_MAX_BODY_BYTES", str(5 * 1024 * 1024))),
        public_url=(
            os.environ.get("SEGMENTS_PUBLIC_URL") or f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"
        ).rstrip("/"),
    )
