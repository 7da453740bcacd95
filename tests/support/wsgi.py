"""A WSGI face on the local gateway, so schemathesis can drive the app in-process."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from infra.local.gateway import EnvelopeGateway

_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def wsgi_app(gateway: EnvelopeGateway) -> Any:
    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # ';' stays encoded: Chalice's local router would cut the path at it (API Gateway routes it as data)
        path = quote(environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,=-._~")
        query = environ.get("QUERY_STRING")
        headers = {
            key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        response = gateway.handle_request(
            environ["REQUEST_METHOD"], path + (f"?{query}" if query else ""), headers, body
        )
        payload = response.get("body") or b""
        if response.get("isBase64Encoded"):
            payload = base64.b64decode(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        status = response["statusCode"]
        out_headers = [(k, str(v)) for k, v in response["headers"].items()]
        start_response(f"{status} {_REASONS.get(status, 'Status')}", out_headers)
        return [payload]

    return application
