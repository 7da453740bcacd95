"""What a viewer can read never carries a working capability: preview and test-send unsubscribe links look
real and unsubscribe nobody, and no response to a viewer holds a token that opens as an unsubscribe link or a
portal token. Link tokens and cursors show nothing of what they carry."""

from __future__ import annotations

import base64
import re

import pytest

from chalicelib.config import get_config
from chalicelib.domain import tokens
from chalicelib.http.openapi import build_spec
from chalicelib.services.mail import INERT_UNSUBSCRIBE_PURPOSE, UNSUBSCRIBE_PURPOSE
from tests.support import mail
from tests.support.world import key_for, path_for

SPEC = build_spec()
CAPABILITIES = (UNSUBSCRIBE_PURPOSE, tokens.PORTAL)
_CANDIDATE = re.compile(r"[A-Za-z0-9_-]{24,}")


def _capabilities_in(text: str) -> list[str]:
    secret = get_config().secret
    return [
        f"{purpose}: {candidate[:12]}…"
        for candidate in _CANDIDATE.findall(text)
        for purpose in CAPABILITIES
        if tokens.unseal(candidate, purpose=purpose, secret=secret) is not None
    ]


def _unsubscribe_token(text: str) -> str:
    return re.search(r"/unsubscribe/([A-Za-z0-9_-]+)", text).group(1)


def test_a_viewer_preview_link_looks_real_and_unsubscribes_nobody(api, world):
    campaign = world.ids["campaign_id"]
    api.patch(f"/campaigns/{campaign}", key=world.admin_key, json={"text": "Bye: {{ unsubscribe_url }}"})
    preview = api.post(f"/campaigns/{campaign}/preview", key=world.viewer_key, json={"contact_id": "p-1"})
    assert preview.status == 200, preview.text
    token = _unsubscribe_token(preview.json["text"])
    assert tokens.unseal(token, purpose=INERT_UNSUBSCRIBE_PURPOSE, secret=get_config().secret) is not None
    assert api.get(f"/unsubscribe/{token}").status == 200
    answer = api.post(f"/unsubscribe/{token}", body="List-Unsubscribe=One-Click",
                      headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert answer.status == 200 and "unsubscribes nobody" in answer.text
    assert api.get("/suppressions", key=world.admin_key).json["items"] == []


def test_a_test_send_carries_an_inert_link_too(api, world):
    campaign = world.ids["campaign_id"]
    api.patch(f"/campaigns/{campaign}", key=world.admin_key, json={"text": "Bye: {{ unsubscribe_url }}"})
    before = mail.mark()
    assert (
        api.post(f"/campaigns/{campaign}/test", key=world.admin_key, json={"emails": ["qa@example.com"]}).status == 200
    )
    (sent,) = mail.sent_since(before)
    header_token = _unsubscribe_token(sent.headers["List-Unsubscribe"])
    api.post(f"/unsubscribe/{header_token}", body="List-Unsubscribe=One-Click",
             headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert api.get("/suppressions", key=world.admin_key).json["items"] == []
    assert "qa@example.com" not in sent.headers["List-Unsubscribe"]


VIEWER_OPERATIONS = sorted(
    (method.upper(), path)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    if operation["x-access"] == "viewer"
)


@pytest.mark.parametrize("method, path", VIEWER_OPERATIONS, ids=[f"{m} {p}" for m, p in VIEWER_OPERATIONS])
def test_no_response_a_viewer_can_read_holds_a_working_capability(api, world, method, path):
    bodies = {"/segments/preview": {"criteria": {"tag": "vip"}, "sample_size": 5},
              "/campaigns/{campaign_id}/preview": {"contact_id": "p-1"}}  # fmt: skip
    query = "?ids=" + world.ids["segment_id"] + "," + world.ids["segment_id"] if path.endswith("overlap") else ""
    body = bodies.get(path)
    reply = api.request(method, path_for(path, world.ids) + query, key=key_for(world, "viewer"),
                        **({"json": body} if body is not None else {}))  # fmt: skip
    assert reply.status < 500, reply.text
    assert _capabilities_in(reply.text) == []


def test_no_response_shows_an_address_or_the_key_layout_inside_a_token(api, world):
    page = api.get("/contacts?limit=1", key=world.viewer_key).json
    cursor = page["next_cursor"]
    assert cursor, "a first page of one contact has a next page (the other shards)"
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b"TENANT" not in decoded and world.id.encode() not in decoded
