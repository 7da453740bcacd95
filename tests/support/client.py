"""HTTP test client over the same gateway the local runtime serves through."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any

from chalice.config import Config

from infra.local.gateway import EnvelopeGateway


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return jsonlib.loads(self.text)

    @property
    def error_code(self) -> str | None:
        body = self.json
        return body.get("error", {}).get("code") if isinstance(body, dict) else None

    @property
    def error_field(self) -> str | None:
        return self.json["error"]["details"].get("field")


_NO_BODY = object()


class ApiClient:
    def __init__(self, app: Any) -> None:
        self.gateway = EnvelopeGateway(app, Config.create(chalice_stage="local", lambda_timeout=30))

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: Any = _NO_BODY,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent_headers = {"content-type": "application/json"}
        if key is not None:
            sent_headers["authorization"] = f"Bearer {key}"
        sent_headers.update({k.lower(): v for k, v in (headers or {}).items()})
        if json is not _NO_BODY:
            body = jsonlib.dumps(json)
        if isinstance(body, str):
            body = body.encode()
        response = self.gateway.handle_request(method.upper(), path, sent_headers, body or b"")
        text = response.get("body") or ""
        return Reply(response["statusCode"], {k.lower(): v for k, v in response["headers"].items()}, text)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Reply:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)
