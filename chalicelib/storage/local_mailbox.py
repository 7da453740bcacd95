"""The LocalMailbox port over the local moto server's ``/_local/mail`` endpoints (infra/local/mailbox.py)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class MotoServerMailbox:
    """Reads the mailbox the local runtime's moto server keeps; only ever used on the local stage."""

    def _get(self, path: str, query: dict[str, Any]) -> Any:
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            return None  # in-process moto (tests): no server, so no mailbox
        address = f"{endpoint.rstrip('/')}/_local/mail{path}?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(address, timeout=10) as response:  # the moto server on loopback
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def newest(self, tenant_id: str, limit: int, before: int | None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant_id": tenant_id, "limit": limit}
        if before is not None:
            query["before"] = before
        answer = self._get("", query)
        return [] if answer is None else answer["items"]

    def one(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        answer = self._get("/" + urllib.parse.quote(message_id, safe=""), {"tenant_id": tenant_id})
        return answer or None
