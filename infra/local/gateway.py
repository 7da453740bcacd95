"""API Gateway stand-in for the local runtime and the tests.

Chalice's LocalGateway answers an unknown path with API Gateway's bare 403
"Missing Authentication Token". The deployed stack maps that to a 404 JSON
envelope with a GatewayResponse (infra/template.json); this wrapper does the same
locally, so clients see one behaviour everywhere.

It also passes SES's open pixel and tracked links (``/_local/track/…``, infra/local/tracking.py) on to the
local SES in moto, so that they live on the API's origin as the console's Mailbox needs them.
"""

from __future__ import annotations

import http.client
import json
import os
from typing import Any
from urllib.parse import urlsplit

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalGateway, LocalGatewayException

from infra.local.tracking import PATH as TRACKING_PATH

NOT_FOUND_BODY = json.dumps({"error": {"code": "not_found", "message": "No such route.", "details": {}}})


class EnvelopeGateway(LocalGateway):
    def handle_request(self, method: str, path: str, headers: dict[str, Any], body: bytes | None) -> dict[str, Any]:
        try:
            return super().handle_request(method, path, headers, body)
        except LocalGatewayException as refusal:
            if b"Missing Authentication Token" in refusal.body or b"Authorization header requires" in refusal.body:
                return {
                    "statusCode": 404,
                    "headers": {"Content-Type": "application/json"},
                    "multiValueHeaders": {},
                    "body": NOT_FOUND_BODY,
                }
            raise


class EnvelopeRequestHandler(ChaliceRequestHandler):
    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Config) -> None:
        self.local_gateway = EnvelopeGateway(app_object, config)
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def do_GET(self) -> None:  # http.server's name for it
        if self.path.startswith(TRACKING_PATH):
            self._pass_to_local_ses()
        else:
            self._generic_handle()

    def _pass_to_local_ses(self) -> None:
        """Ask moto for a tracking address (it publishes the open or click) and answer what it answered."""
        endpoint = urlsplit(os.environ["AWS_ENDPOINT_URL"])
        connection = http.client.HTTPConnection(endpoint.hostname or "127.0.0.1", endpoint.port, timeout=10)
        try:
            forwarded = {"User-Agent": self.headers.get("User-Agent", ""), "X-Forwarded-For": self.client_address[0]}
            connection.request("GET", self.path, headers=forwarded)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        passed = ("Content-Type", "Location", "Cache-Control")
        headers = {name: value for name in passed if (value := response.getheader(name)) is not None}
        self._send_http_response_with_body(response.status, headers, body)

    def _send_http_response_with_body(self, code: int, headers: Any, body: str | bytes) -> None:
        """HEAD answers with GET's headers (Content-Length included) and no body: a body after a HEAD
        response would be read as the start of the next response on a keep-alive connection."""
        if self.command != "HEAD":
            super()._send_http_response_with_body(code, headers, body)
            return
        self.send_response(code)
        self.send_header("Content-Length", str(len(body.encode() if isinstance(body, str) else body)))
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self._send_headers(headers)

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go through our JSON logger from the route layer instead."""
