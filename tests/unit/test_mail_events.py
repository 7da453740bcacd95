"""SES's delivery, open and click events read (domain/mail_events.py): identified by message id, type,
timestamp and link, and the contact event each is. Counting them: tests/unit/test_campaign_service.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from chalicelib.domain.mail_events import contact_event, read_ses_event
from tests.support.ses_events import ses_notification as ses

NOW = datetime.now(UTC)


def test_deliveries_opens_and_clicks_are_read_with_their_identity():
    tags = {"tenant_id": "t", "campaign_id": "cmp_1", "contact_id": "ctc_1"}
    published = json.loads(ses("Click", "m1", tags, link="https://example.com/a")["Message"])
    click = read_ses_event(published)
    assert (click.kind, click.link, click.source) == ("clicked", "https://example.com/a", {"campaign_id": "cmp_1"})
    other_link = read_ses_event({**published, "click": {**published["click"], "link": "https://example.com/b"}})
    later = read_ses_event({**published, "click": {**published["click"], "timestamp": "2030-01-01T00:00:00Z"}})
    same = read_ses_event(json.loads(json.dumps(published)))  # the same event, published or delivered again
    assert click.key == same.key and len({click.key, other_link.key, later.key}) == 3
    opened = read_ses_event(json.loads(ses("Open", "m1", tags)["Message"]))
    assert opened.kind == "opened" and opened.key != click.key and opened.link is None
    assert read_ses_event(json.loads(ses("Send", "m1", tags)["Message"])) is None
    assert read_ses_event({"eventType": "Open", "mail": {"messageId": "m1"}, "open": {"timestamp": "soon"}}) is None
    event = contact_event(click, NOW)
    assert event["id"] == f"ses-{click.key}" and event["type"] == "email.clicked"
    assert event["properties"] == {"campaign_id": "cmp_1", "link": "https://example.com/a"}
    old = read_ses_event(json.loads(ses("Open", "m1", tags, minutes_ago=60 * 24 * 500)["Message"]))
    assert contact_event(old, NOW) is None  # beyond the event retention: counted, but no contact event
