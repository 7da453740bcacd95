"""SES's open and click tracking as the local runtime does it (infra/local/tracking.py): what a tracked mail
looks like, and which requests of its addresses become SES events. No moto: the SNS side is tested in
tests/integration/test_local_tracking.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from chalicelib.domain.mail_events import read_ses_event
from infra.local import tracking

MAIL = tracking.SentMail(
    message_id="0100-abc",
    source="news@example.com",
    destination=["ada@example.com"],
    tags={"tenant_id": "ten_1", "campaign_id": "cmp_1", "contact_id": "ctc_1"},
    sent_at="2026-12-01T08:00:00.000Z",
    account="123456789012",
    region="us-east-1",
)
BASE = "http://127.0.0.1:8000"
HTML = (
    "<html><body><p>Hi Ada</p>"
    '<a href="https://example.com/offer?x=1&amp;y=2">Offer</a> '
    "<a class='b' href='http://example.com/b'>B</a> "
    '<a href="https://example.com/kept" ses:no-track>Kept</a> '
    '<a href="mailto:help@example.com">Mail us</a>'
    "</body></html>"
)


def message(html: str | None, text: str = "Hi Ada: https://example.com/offer") -> bytes:
    built = EmailMessage()
    built["To"], built["Subject"] = "ada@example.com", "Hi"
    built.set_content(text)
    if html is not None:
        built.add_alternative(html, subtype="html")
    return built.as_bytes()


def parts(raw: bytes) -> dict[str, str]:
    parsed = message_from_bytes(raw, policy=default)
    return {part.get_content_type(): part.get_content() for part in parsed.walk() if not part.is_multipart()}


def tracked_urls(html: str) -> list[str]:
    return re.findall(r"""(?:href|src)=["'](http://127\.0\.0\.1:8000/_local/track/[^"']+)["']""", html)


def test_http_links_are_tracked_an_open_pixel_closes_the_body_and_the_rest_is_as_written():
    tracked = parts(tracking.track_links(message(HTML), MAIL, BASE))
    html = tracked["text/html"]
    urls = tracked_urls(html)
    assert [url.split("/")[5] for url in urls] == ["click", "click", "open"]
    assert 'href="https://example.com/kept" ses:no-track' in html and 'href="mailto:help@example.com"' in html
    assert html.index("/open/") < html.index("</body>")
    assert '<img src="' + urls[2] + '" alt="" width="1" height="1">' in html  # no style: the console's CSP
    assert tracked["text/plain"].strip() == "Hi Ada: https://example.com/offer"  # SES tracks HTML only


def test_a_mail_without_html_is_left_alone():
    raw = message(None)
    assert tracking.track_links(raw, MAIL, BASE) == raw


def test_a_click_redirects_to_the_link_in_the_mail_and_is_the_event_ses_publishes():
    urls = tracked_urls(parts(tracking.track_links(message(HTML), MAIL, BASE))["text/html"])
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    path = urls[0].removeprefix(BASE)
    followed = tracking.followed(path, "Mozilla/5.0", "10.0.0.7", now=at)
    assert followed is not None
    assert followed.redirect == "https://example.com/offer?x=1&y=2"  # the link as written, unescaped
    assert (followed.account, followed.region) == (MAIL.account, MAIL.region)
    assert followed.event["click"] == {
        "timestamp": "2026-12-01T09:30:00.000Z", "userAgent": "Mozilla/5.0", "ipAddress": "10.0.0.7",
        "link": "https://example.com/offer?x=1&y=2", "linkTags": {},
    }  # fmt: skip
    assert followed.event["mail"]["tags"] == {name: [value] for name, value in MAIL.tags.items()}
    read = read_ses_event(followed.event)
    assert read is not None
    assert (read.kind, read.message_id, read.link, read.tags) == ("clicked", "0100-abc", followed.redirect, MAIL.tags)
    second = tracking.followed(urls[1].removeprefix(BASE), "", "127.0.0.1", now=at)
    assert second is not None and second.redirect == "http://example.com/b"


def test_an_open_is_the_open_event_ses_publishes():
    (pixel,) = [
        u for u in tracked_urls(parts(tracking.track_links(message(HTML), MAIL, BASE))["text/html"]) if "/open/" in u
    ]
    followed = tracking.followed(pixel.removeprefix(BASE), "Mail/1", "127.0.0.1")
    assert followed is not None and followed.redirect is None
    read = read_ses_event(followed.event)
    assert read is not None and (read.kind, read.message_id, read.link) == ("opened", "0100-abc", None)


def test_only_addresses_the_local_ses_wrote_mean_anything():
    urls = tracked_urls(parts(tracking.track_links(message(HTML), MAIL, BASE))["text/html"])
    click, pixel = urls[0].removeprefix(BASE), urls[2].removeprefix(BASE)
    click_token, pixel_token = click.rsplit("/", 1)[1], pixel.rsplit("/", 1)[1]
    altered = click_token[:-2] + ("AA" if not click_token.endswith("AA") else "BB")
    for path in (
        f"{tracking.PATH}click/{altered}",  # one byte changed: no redirect anywhere
        f"{tracking.PATH}click/{pixel_token}",  # an open's token is not a link
        f"{tracking.PATH}open/{click_token}",  # nor is a link an open
        f"{tracking.PATH}visit/{click_token}",
        f"{tracking.PATH}click/",
        f"{tracking.PATH}click/{'A' * 5000}",
    ):
        assert tracking.followed(path, "", "127.0.0.1") is None, path


def test_a_delivery_is_the_event_ses_publishes_for_each_recipient():
    event = tracking.delivery_event(MAIL, "ada@example.com", now=datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC))
    read = read_ses_event(event)
    assert read is not None and (read.kind, read.at) == ("delivered", "2026-12-01T08:00:01.000Z")
    assert event["delivery"]["recipients"] == ["ada@example.com"]
