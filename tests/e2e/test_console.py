"""The console in a real browser (Debian's Chromium, driven by Playwright) against the real local runtime:
each seed flow end to end, found by accessible names as assistive technology finds them, with no console
errors, contact data shown as text, the key kept out of logs, keyboard use, contrast, a phone-sized screen,
and a stage prefix. The screenshots the README shows are taken here (docs/console/)."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.runtime import PROJECT, LocalRuntime

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = PROJECT / "docs" / "console"
OPERATOR = "local-operator-key"
PEOPLE = "\n".join(
    json.dumps(row)
    for row in [
        {"external_id": f"p-{n}", "email": f"p{n}@example.com", "first_name": name, "last_name": "Lopez",
         "tags": tags, "attributes": {"country": country, "city": city}}
        for n, (name, tags, country, city) in enumerate(
            [("Ana", ["vip"], "CA", "Toronto"), ("Bo", ["vip", "local"], "CA", "Montreal"),
             ("Chen", ["local"], "US", "Boston"), ("Dara", [], "US", "Boston"),
             ("Eli", ["vip", "local"], "CA", "Toronto"), ("Fatima", ["local"], "CA", "Toronto"),
             ("Gus", ["vip"], "US", "Austin"), ("Hana", [], "GB", "Leeds")]
        )
    ]
)  # fmt: skip


class Api:
    """The runtime's HTTP API, for setting up and for checking what the console shows."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.base = runtime.base_url

    def __call__(self, method: str, path: str, key: str, body: Any = None, content_type: str = "application/json"):
        data = None if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {key}")
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode()}") from None

    def wait(self, check, seconds: float = 30) -> Any:
        import time

        deadline = time.monotonic() + seconds
        while True:
            found = check()
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.25)


@pytest.fixture(scope="module")
def runtime():
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is needed: `make test` installs it (apt-get install chromium)")
    started = LocalRuntime()
    yield started
    assert started.stop() == 0, started.output[-3000:]


@pytest.fixture(scope="module")
def api(runtime) -> Api:
    return Api(runtime)


def _tenant(api: Api, name: str, segments: bool = True) -> dict:
    tenant = api("POST", "/tenants", OPERATOR, {"name": name})
    api("PATCH", f"/tenants/{tenant['id']}", OPERATOR, {"features": {"segments": segments}})
    api("PATCH", "/settings", tenant["admin_key"], {"requests_per_second": 1000, "send_rate_per_second": 100})
    return tenant


@pytest.fixture(scope="module")
def shop(api) -> dict:
    """A tenant with eight contacts (tags vip and local created through the console by the first test)."""
    tenant = _tenant(api, "Console Shop")
    tenant["viewer_key"] = api("POST", "/api-keys", tenant["admin_key"], {"role": "viewer", "name": "read"})["key"]
    return tenant


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh tab whose console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.problems = problems
    yield opened
    context.close()
    assert problems == [], problems


def sign_in(page: Page, base: str, key: str) -> None:
    page.goto(base + "/console")
    page.get_by_role("textbox", name="API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(nav(page, "Segments")).to_be_visible()


def nav(page: Page, name: str):
    """A link of the console's navigation (the contract's names: "Segments", "Customer Overview", …)."""
    return page.get_by_role("navigation", name="Console").get_by_role("link", name=name, exact=True)


def expect_count(page: Page, wanted: int) -> None:
    expect(page.get_by_role("status").filter(has_text="members match now")).to_have_text(f"{wanted} members match now")


def preview(api: Api, key: str, criteria: dict) -> int:
    return api("POST", "/segments/preview", key, {"criteria": criteria})["count"]


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def compose_campaign(page: Page, name: str, subject: str, text: str, html: str | None = None) -> None:
    """A new campaign from news@example.com to the "Toronto" segment, filled in (not yet saved)."""
    nav(page, "Campaigns").click()
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_role("textbox", name="Campaign name").fill(name)
    page.get_by_role("textbox", name="From", exact=True).fill("news@example.com")
    page.get_by_role("textbox", name="Subject", exact=True).fill(subject)
    if html:
        page.get_by_role("textbox", name="HTML body", exact=True).fill(html)
    page.get_by_role("textbox", name="Text body", exact=True).fill(text)
    audience = page.get_by_role("group", name="Send to members of any of")
    audience.get_by_role("checkbox", name=re.compile("^Toronto")).check()


def save_as_segment(page: Page, api: Api, key: str, name: str) -> dict:
    """Name what the screen selected, press "Save as segment", and return the segment once evaluated."""
    page.get_by_role("textbox", name="Segment name").fill(name)
    page.get_by_role("button", name="Save as segment").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    return wait_ready(api, key, name)


def wait_ready(api: Api, key: str, name: str) -> dict:
    def ready():
        found = [s for s in api("GET", "/segments?limit=500", key)["items"] if s["name"] == name]
        return found[0] if found and found[0]["status"] == "ready" else None

    segment = api.wait(ready)
    assert segment, f"segment {name} never became ready"
    return segment


# --- the seed flows ---------------------------------------------------------------------------------------


def test_create_tags_then_a_segment_with_and_or_whose_live_count_is_the_apis(page, runtime, api, shop):
    key = shop["admin_key"]
    sign_in(page, runtime.base_url, key)
    nav(page, "Contacts").click()
    for tag in ("vip", "local"):
        page.get_by_role("textbox", name="Tag name").fill(tag)
        page.get_by_role("button", name="Create tag").click()
        expect(page.get_by_text(f"Tag {tag} created.")).to_be_visible()
    job = api("POST", "/contacts/import", key, PEOPLE, "application/x-ndjson")
    assert api.wait(lambda: api("GET", f"/jobs/{job['id']}", key)["status"] == "succeeded")

    nav(page, "Segments").click()
    page.get_by_role("button", name="Create segment").click()
    page.get_by_role("textbox", name="Segment name").fill("VIP or local")
    for tag in ("vip", "local"):
        page.get_by_role("combobox", name="Tag to add").select_option(tag)
        page.get_by_role("button", name="Add tag").click()
    expect_count(page, preview(api, key, {"all": [{"tag": "vip"}, {"tag": "local"}]}))  # and, at first
    page.get_by_role("radio", name="any of these tags (or)").check()
    either = {"any": [{"tag": "vip"}, {"tag": "local"}]}
    expect_count(page, preview(api, key, either))
    assert json.loads(page.get_by_role("textbox", name="Criteria JSON").input_value()) == either
    shot(page, "create-segment")

    # the JSON editor and the builder are two views of the same criteria
    narrowed = {"all": [{"any": [{"tag": "vip"}, {"tag": "local"}]}, {"attr": "country", "op": "eq", "value": "CA"}]}
    page.get_by_role("textbox", name="Criteria JSON").fill(json.dumps(narrowed))
    expect_count(page, preview(api, key, narrowed))
    expect(page.get_by_role("textbox", name="Attribute 1")).to_have_value("country")
    page.get_by_role("textbox", name="Criteria JSON").fill(json.dumps(either))
    expect_count(page, preview(api, key, either))
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", name="VIP or local")).to_be_visible()
    saved = wait_ready(api, key, "VIP or local")
    assert saved["criteria"] == either and saved["member_count"] == preview(api, key, either)
    expect(page.get_by_text(re.compile(rf"ready · {saved['member_count']} members"))).to_be_visible(timeout=15_000)

    nav(page, "Segments").click()
    row = page.get_by_role("row").filter(has_text="VIP or local")
    expect(row.get_by_role("cell").nth(0)).to_have_text(str(saved["member_count"]))
    shot(page, "segments")


def test_an_older_count_never_replaces_a_newer_one(page, runtime, api, shop):
    key = shop["admin_key"]
    held = []  # the first preview request is held back and answered last, with a count nobody could have

    def hold_the_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    sign_in(page, runtime.base_url, key)
    page.route("**/segments/preview", hold_the_first)
    page.goto(runtime.base_url + "/console#/segments/new")
    page.get_by_role("combobox", name="Tag to add").select_option("vip")
    page.get_by_role("button", name="Add tag").click()
    for _ in range(50):  # the debounced first count goes out, and is held
        if held:
            break
        page.wait_for_timeout(100)
    assert held
    page.get_by_role("combobox", name="Tag to add").select_option("local")
    page.get_by_role("button", name="Add tag").click()
    newer = preview(api, key, {"all": [{"tag": "vip"}, {"tag": "local"}]})
    expect_count(page, newer)
    with contextlib.suppress(PlaywrightError):  # the page may have aborted it already: as good as ignoring it
        held[0].fulfill(json={"count": 999, "contacts_evaluated": 0, "sample": []})
    page.wait_for_timeout(500)
    expect_count(page, newer)


def test_the_tag_builder_stops_at_the_tenants_limit_and_offers_only_existing_tags(page, runtime, api, shop):
    key = shop["admin_key"]
    api("PATCH", "/settings", key, {"limits": {"tags_per_segment": 1}})
    try:
        sign_in(page, runtime.base_url, key)
        page.goto(runtime.base_url + "/console#/segments/new")
        picker = page.get_by_role("combobox", name="Tag to add")
        expect(picker.locator("option")).to_have_text(["Choose a tag…", "local", "vip"])  # no way to make one here
        picker.select_option("vip")
        page.get_by_role("button", name="Add tag").click()
        expect(page.get_by_text("This segment names 1 tags: the limit is 1.", exact=False)).to_be_visible()
        expect(page.get_by_role("button", name="Add tag")).to_be_disabled()
    finally:
        api("PATCH", "/settings", key, {"limits": {"tags_per_segment": None}})


def test_customer_overview_clicks_build_criteria_and_save_as_a_segment(page, runtime, api, shop):
    key = shop["admin_key"]
    sign_in(page, runtime.base_url, key)
    nav(page, "Customer Overview").click()
    tags = page.get_by_role("region", name="Tags")
    tags.get_by_role("button", name=re.compile(r"^vip \(")).click()
    expect_count(page, preview(api, key, {"tag": "vip"}))
    page.get_by_role("checkbox", name=re.compile("^Exclude the values I click")).check()
    tags.get_by_role("button", name=re.compile(r"^local \(")).click()
    wanted = {"all": [{"tag": "vip"}, {"not": {"tag": "local"}}]}
    expect_count(page, preview(api, key, wanted))
    page.get_by_role("checkbox", name=re.compile("^Exclude the values I click")).uncheck()
    country = page.get_by_role("region", name="Attribute: country")
    country.get_by_role("button", name=re.compile(r"^CA \(")).click()
    country.get_by_role("button", name=re.compile(r"^US \(")).click()
    canada, usa = ({"attr": "country", "op": "eq", "value": value} for value in ("CA", "US"))
    wanted = {"all": [{"tag": "vip"}, {"not": {"tag": "local"}}, {"any": [canada, usa]}]}
    expect_count(page, preview(api, key, wanted))
    country.get_by_role("button", name=re.compile(r"US \(")).click()  # clicking again removes it
    wanted["all"][2] = canada
    expect_count(page, preview(api, key, wanted))
    shot(page, "customer-overview")
    assert save_as_segment(page, api, key, "Canadian VIPs, not local")["criteria"] == wanted


def test_the_mixer_shows_count_and_overlap_and_saves_the_mix(page, runtime, api, shop):
    key = shop["admin_key"]
    for name, criteria in (("Mix VIP", {"tag": "vip"}), ("Mix local", {"tag": "local"})):
        api("POST", "/segments", key, {"name": name, "criteria": criteria})
        wait_ready(api, key, name)
    ids = {s["name"]: s["id"] for s in api("GET", "/segments?limit=500", key)["items"]}
    overlap = api("GET", f"/segments/overlap?ids={ids['Mix VIP']},{ids['Mix local']}", key)["pairs"][0]
    sign_in(page, runtime.base_url, key)
    nav(page, "Segment Mixer").click()
    page.get_by_role("checkbox", name=re.compile(r"^Mix VIP \(")).check()
    page.get_by_role("checkbox", name=re.compile(r"^Mix local \(")).check()
    both = {"all": [{"segment": ids["Mix VIP"]}, {"segment": ids["Mix local"]}]}
    expect_count(page, preview(api, key, both))
    table = page.get_by_role("table", name=re.compile("Pairwise overlap"))
    expect(table.get_by_text(f"{overlap['both']} in both").first).to_be_visible()
    expect(table.get_by_text(f"Jaccard {overlap['jaccard']:.2f}").first).to_be_visible()
    page.get_by_role("radio", name=re.compile("^or:")).check()
    expect_count(page, preview(api, key, {"any": both["all"]}))
    page.get_by_role("checkbox", name="Exclude Mix local (not)").check()
    without = {"all": [{"segment": ids["Mix VIP"]}, {"not": {"segment": ids["Mix local"]}}]}
    expect_count(page, preview(api, key, without))
    shot(page, "segment-mixer")
    assert save_as_segment(page, api, key, "VIP, not local (mix)")["criteria"] == without


def test_delete_reviews_what_is_connected_and_needs_the_checkbox_and_tags_stay(page, runtime, api, shop):
    key = shop["admin_key"]
    segment = api("POST", "/segments", key, {"name": "Doomed", "criteria": {"tag": "vip"}})
    wait_ready(api, key, "Doomed")
    trigger = api("POST", "/triggers", key, {"name": "Welcome doomed", "event": {"type": "segment.entered",
                  "segments": [segment["id"]]}, "actions": [{"type": "add_tag", "tag": "local"}]})  # fmt: skip
    sign_in(page, runtime.base_url, key)
    page.get_by_role("row").filter(has_text="Doomed").get_by_role("button", name="Manage").click()
    expect(page.get_by_role("heading", name="Doomed")).to_be_visible()
    page.get_by_role("button", name="Review and delete…").click()
    review = page.get_by_role("group", name="Review before deleting")
    expect(review).to_contain_text("1 connected item(s)")
    expect(page.get_by_role("listitem").filter(has_text="Welcome doomed")).to_be_visible()
    delete = page.get_by_role("button", name="Delete segment")
    expect(delete).to_be_disabled()
    page.get_by_role("checkbox", name=re.compile("^I understand")).check()
    expect(delete).to_be_enabled()
    shot(page, "delete-review")
    delete.click()
    expect(page.get_by_role("heading", name="Segments", exact=True)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Doomed")).to_have_count(0)
    assert "vip" in [tag["name"] for tag in api("GET", "/tags", key)["items"]]  # tags stay
    after = api("GET", f"/triggers/{trigger['id']}", key)
    assert after["enabled"] is False and after["status_reason"]  # it lost its only segment, and says why


def test_a_campaign_sends_with_progress_its_mail_is_opened_and_clicked_and_unsubscribes_in_one_click(
    page, runtime, api, shop
):
    key = shop["admin_key"]
    segment = api(
        "POST", "/segments", key, {"name": "Toronto", "criteria": {"attr": "city", "op": "eq", "value": "Toronto"}}
    )
    wait_ready(api, key, "Toronto")
    sign_in(page, runtime.base_url, key)
    greeting = "Hi {{ contact.first_name }}"
    html = '<p>Hi <b>{{ contact.first_name }}</b></p><p><a href="https://example.com/spring">Spring offer</a></p>'
    compose_campaign(page, "Spring in Toronto", greeting, f"{greeting}: {{{{ unsubscribe_url }}}}", html)
    expect(page.get_by_role("combobox", name="Track opens and clicks")).to_have_value("")  # the tenant's: on
    audience = preview(api, key, {"segment": segment["id"]})
    expect(page.get_by_role("status").filter(has_text="in the audience")).to_contain_text(f"{audience} contacts")
    page.get_by_role("button", name="Save campaign").click()
    page.get_by_role("textbox", name="Preview as contact").fill("p-0")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("Hi Ana").first).to_be_visible()
    page.get_by_role("button", name="Send now").click()
    progress = page.get_by_role("progressbar", name="Sending progress")
    expect(progress).to_have_attribute("value", "100", timeout=30_000)
    expect(page.locator("strong.status")).to_have_text("sent", timeout=30_000)
    stats = page.get_by_role("definition")
    assert str(audience) in " ".join(stats.all_text_contents())
    shot(page, "campaign-sent")

    nav(page, "Mailbox").click()
    mail = page.get_by_role("link", name="Hi Ana")
    expect(mail).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="p0@example.com")).to_have_count(1)
    mail.click()
    expect(page.get_by_role("definition").filter(has_text="List-Unsubscribe=One-Click")).to_be_visible()
    (sent,) = [c for c in api("GET", "/campaigns", key)["items"] if c["name"] == "Spring in Toronto"]

    def stats() -> dict:
        return api("GET", f"/campaigns/{sent['id']}", key)["stats"]

    # showing the mail loaded SES's open pixel; a tracked link counts a click, then goes where the mail pointed
    assert api.wait(lambda: stats()["opened"] == 1 and stats()["delivered"] == audience), stats()
    page.context.route(
        "https://example.com/**", lambda route: route.fulfill(body="The offer", content_type="text/plain")
    )
    with page.expect_popup() as offer:
        page.get_by_role("link", name="Follow “Spring offer”").click()
    expect(offer.value).to_have_url("https://example.com/spring")
    offer.value.close()
    assert api.wait(lambda: stats()["clicked"] == 1), stats()
    page.get_by_role("button", name="Unsubscribe (one click)").click()
    expect(page.get_by_text("p0@example.com is unsubscribed.")).to_be_visible()
    shot(page, "mailbox")
    suppressed = api("GET", "/suppressions", key)["items"]
    assert [(s["email"], s["reason"]) for s in suppressed if s["email"] == "p0@example.com"] == [
        ("p0@example.com", "unsubscribed")
    ]


def test_an_ab_test_is_composed_sent_and_shows_its_variants(page, runtime, api, shop):
    key = shop["admin_key"]
    sign_in(page, runtime.base_url, key)
    compose_campaign(page, "Two subjects", "Spring is here", "Hi {{ contact.first_name }}: {{ unsubscribe_url }}")
    page.get_by_role("checkbox", name="Test a second version (B) on part of the audience first").check()
    page.get_by_role("textbox", name="B: subject").fill("SPRING!")
    page.get_by_role("textbox", name="B: text body").fill("Hey {{ contact.first_name }}: {{ unsubscribe_url }}")
    page.get_by_role("spinbutton", name="Test share (% of the audience)").fill("50")
    page.get_by_role("textbox", name="Wait before choosing the winner").fill("PT1H")
    page.get_by_role("combobox", name="Winner by").select_option("clicks")
    page.get_by_role("button", name="Save campaign").click()
    expect(page.get_by_role("heading", name="Two subjects")).to_be_visible()
    (saved,) = [c for c in api("GET", "/campaigns", key)["items"] if c["name"] == "Two subjects"]
    assert [(v["name"], v["subject"]) for v in saved["variants"]] == [("A", "Spring is here"), ("B", "SPRING!")]
    assert saved["ab_test"] == {"test_percent": 50, "wait": "PT1H", "metric": "clicks"}
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("strong.status")).not_to_have_text("draft")
    table = page.get_by_role("table", name="Stats by variant")
    expect(table).to_be_visible()
    expect(table.get_by_role("row")).to_have_count(3)  # the header and A, B
    expect(page.get_by_text("A/B test: 50% of the audience first; after PT1H")).to_be_visible()
    assert api("POST", f"/campaigns/{saved['id']}/cancel", key)["status"] == "cancelled"


def test_a_scheduled_campaign_can_be_cancelled_before_it_starts(page, runtime, api, shop):
    key = shop["admin_key"]
    sign_in(page, runtime.base_url, key)
    compose_campaign(page, "Next year", "Later", "Later, {{ contact.first_name }}")
    page.get_by_role("textbox", name=re.compile("^Send at")).fill("2030-01-15T09:30")
    page.get_by_role("button", name="Save campaign").click()
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator("strong.status")).to_have_text("scheduled")
    page.get_by_role("button", name="Cancel campaign").click()
    expect(page.locator("strong.status")).to_have_text("cancelled")
    campaign = next(c for c in api("GET", "/campaigns", key)["items"] if c["name"] == "Next year")
    assert campaign["status"] == "cancelled" and campaign["send_at"].startswith("2030-01-15")


def test_an_import_from_the_browser_shows_progress_and_each_row_problem_by_line(page, runtime, api, shop):
    sign_in(page, runtime.base_url, shop["admin_key"])
    nav(page, "Jobs").click()
    rows = "external_id,email,first_name\nj-1,j1@example.com,Jo\nj-2,not-an-email,Ju\nj-3,j3@example.com,Ji\n"
    page.get_by_role("textbox", name="Or paste rows").fill(rows)
    page.get_by_role("button", name="Import contacts").click()
    expect(page.get_by_role("heading", name="Row problems (1)")).to_be_visible(timeout=30_000)
    problem = page.get_by_role("row").filter(has_text="not")
    expect(problem.get_by_role("cell").nth(0)).to_have_text("3")  # the line, header included
    expect(problem.get_by_role("cell").nth(1)).to_have_text("email")
    expect(page.get_by_role("progressbar").first).to_have_attribute("value", "100")
    assert api("GET", "/contacts/j-3", shop["admin_key"])["first_name"] == "Ji"  # the good rows landed


def test_contacts_are_found_and_a_contact_page_shows_its_segments_and_takes_tags(page, runtime, api, shop):
    key = shop["admin_key"]
    api("POST", "/tags", key, {"name": "partner"})
    sign_in(page, runtime.base_url, key)
    nav(page, "Contacts").click()
    page.get_by_role("searchbox", name="Search contacts").fill("bo lo")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row").filter(has_text="p1@example.com")).to_have_count(1)
    expect(page.get_by_role("row")).to_have_count(2)  # the header and Bo Lopez
    page.get_by_role("link", name="Bo Lopez").click()
    expect(page.get_by_role("heading", name="Bo Lopez")).to_be_visible()
    its_segments = page.get_by_role("region", name="Segments of this contact")
    expect(its_segments.get_by_role("link", name="VIP or local")).to_be_visible()
    page.get_by_role("combobox", name="Tag to add").select_option("partner")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_role("list", name="Tags of this contact").get_by_text("partner")).to_be_visible()
    assert "partner" in api("GET", "/contacts/p-1", key)["tags"]


def test_triggers_and_announcements_are_made_and_switched_off_in_the_console(page, runtime, api, shop):
    key = shop["admin_key"]
    sign_in(page, runtime.base_url, key)
    nav(page, "Triggers").click()
    page.get_by_role("button", name="Create trigger").click()
    page.get_by_role("textbox", name="Trigger name").fill("Tag Toronto joiners")
    page.get_by_role("group", name="Segments").get_by_role("checkbox", name="Toronto").check()
    page.get_by_role("combobox", name="Tag of action 1").select_option("vip")
    page.get_by_role("button", name="Save trigger").click()
    expect(page.get_by_role("heading", name="Tag Toronto joiners")).to_be_visible()
    trigger = next(t for t in api("GET", "/triggers", key)["items"] if t["name"] == "Tag Toronto joiners")
    assert trigger["enabled"] and trigger["event"]["type"] == "segment.entered"
    assert trigger["actions"] == [{"type": "add_tag", "tag": "vip"}]
    page.get_by_role("checkbox", name="Enabled").uncheck()
    page.get_by_role("button", name="Save trigger").click()
    expect(page.get_by_text(re.compile(r"^Saved \(version"))).to_be_visible()
    assert api("GET", f"/triggers/{trigger['id']}", key)["enabled"] is False

    nav(page, "Triggers").click()
    page.get_by_role("button", name="Create announcement").click()
    page.get_by_role("textbox", name="Title").fill("Spring party")
    page.get_by_role("textbox", name="Body").fill("Join us in Toronto")
    page.get_by_role("checkbox", name="Toronto").check()
    page.get_by_role("textbox", name="Starts").fill("2026-01-01T00:00")
    page.get_by_role("textbox", name="Ends").fill("2036-01-01T00:00")
    page.get_by_role("button", name="Save announcement").click()
    expect(page.get_by_role("heading", name="Spring party")).to_be_visible()
    nav(page, "Triggers").click()
    row = page.get_by_role("row").filter(has_text="Spring party")
    expect(row.get_by_role("cell").last).to_have_text("yes")  # active now


# --- who sees what ----------------------------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver on loopback: it answers 200 and keeps what it got."""

    got: ClassVar[list[tuple[dict, dict]]] = []

    def do_POST(self) -> None:  # http.server's name for it
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.got.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        return


def test_a_webhook_is_added_tested_and_switched_off_in_the_console(page, runtime, api, shop):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        sign_in(page, runtime.base_url, shop["admin_key"])
        nav(page, "Webhooks").click()
        expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
        page.get_by_role("textbox", name="Endpoint URL").fill(url)
        page.get_by_role("textbox", name="Description").fill("Our CRM")
        page.get_by_role("checkbox", name="A contact entered a segment").check()
        page.get_by_role("checkbox", name="A trigger fired").check()
        page.get_by_role("button", name="Add webhook").click()
        secret = page.locator("code.secret")
        expect(secret).to_contain_text("whsec_")
        (hook,) = [w for w in api("GET", "/webhooks", shop["admin_key"])["items"] if w["url"] == url]
        assert hook["events"] == ["segment.entered", "trigger.fired"] and "secret" not in hook
        page.get_by_role("link", name=url).click()
        page.get_by_role("button", name="Send test event").click()
        expect(page.get_by_text(re.compile(r"Test event delivered: HTTP 200 in \d+ ms"))).to_be_visible()
        ((headers, body),) = Receiver.got
        assert body["type"] == "webhook.test" and headers["Segments-Key-Id"] == hook["key_id"]
        expect(page.get_by_role("row").filter(has_text="webhook.test")).to_contain_text("delivered")
        shot(page, "webhook")
        page.get_by_role("button", name="Switch off").click()
        expect(page.get_by_text("off: switched off by an admin")).to_be_visible()
        assert api("GET", f"/webhooks/{hook['id']}", shop["admin_key"])["status"] == "disabled"
        page.get_by_role("button", name="Delete webhook").click()
        expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
        assert api("GET", "/webhooks", shop["admin_key"])["items"] == []
    finally:
        server.shutdown()


def test_a_journey_is_written_watched_step_by_step_paused_and_resumed_in_the_console(page, runtime, api, shop):
    key = shop["admin_key"]
    api("POST", "/tags", key, {"name": "onboarded"})
    definition = {
        "name": "Onboarding",
        "entry": {"type": "contact.created"},
        "start": "hello",
        "steps": {
            "hello": {"type": "send_email", "from": "news@example.com", "subject": "Hello {{ contact.first_name }}",
                      "text": "Welcome", "next": "wait"},
            "wait": {"type": "wait", "duration": "P2D", "next": "tag"},
            "tag": {"type": "add_tag", "tag": "onboarded", "next": None},
        },
    }  # fmt: skip
    sign_in(page, runtime.base_url, key)
    nav(page, "Journeys").click()
    page.get_by_role("button", name="Create journey").click()
    editor = page.get_by_role("textbox", name="Definition (JSON)")
    expect(editor).to_contain_text('"wait_for_event"')  # a starter to edit
    editor.fill(json.dumps({**definition, "start": "nowhere"}))
    page.get_by_role("button", name="Create journey").click()
    expect(page.get_by_role("alert")).to_contain_text("(start)")  # refused, naming the field
    assert page.problems == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    page.problems.clear()  # the browser reports the refusal, as it should
    editor.fill(json.dumps(definition))
    page.get_by_role("button", name="Create journey").click()
    expect(page.get_by_role("heading", name="Onboarding", level=1)).to_be_visible()
    (journey,) = [j for j in api("GET", "/journeys", key)["items"] if j["name"] == "Onboarding"]
    flow = page.get_by_role("list", name="Steps")
    expect(flow.get_by_role("heading", level=3)).to_have_text(["hello", "wait", "tag"])  # in the order met

    contact = api("POST", "/contacts", key, {"external_id": "jo-1", "email": "jo@example.com", "first_name": "Jo"})
    at_wait = api.wait(
        lambda: api("GET", f"/journeys/{journey['id']}/stats", key)["steps"].get("wait", {}).get("waiting")
    )
    assert at_wait == 1, "the new contact never reached the wait"
    page.get_by_role("button", name="Refresh counts").click()
    expect(page.get_by_role("listitem", name="Step wait")).to_contain_text("1 entered · 0 completed · 1 waiting")
    expect(page.get_by_role("listitem", name="Step hello")).to_contain_text("1 entered · 1 completed")
    page.get_by_role("textbox", name="Contact").fill("jo-1")
    page.get_by_role("button", name="Find contact").click()
    expect(page.get_by_role("status").filter(has_text=contact["id"])).to_contain_text("waiting at wait")
    expect(page.get_by_role("table", name="History").get_by_role("row")).to_have_count(
        4
    )  # header, entered, sent, waiting
    page.get_by_role("heading", name="Onboarding", level=1).scroll_into_view_if_needed()
    shot(page, "journey")

    page.get_by_role("button", name="Pause journey").click()
    expect(page.get_by_text("Paused: no one enters or moves on.")).to_be_visible()
    assert api("GET", f"/journeys/{journey['id']}", key)["status"] == "paused"
    page.get_by_role("button", name="Resume journey").click()
    expect(page.get_by_role("button", name="Pause journey")).to_be_visible()
    edited = {
        **definition,
        "steps": {**definition["steps"], "wait": {"type": "wait", "duration": "P1D", "next": "tag"}},
    }
    editor.fill(json.dumps(edited))
    page.get_by_role("button", name="Save journey").click()
    expect(page.get_by_text("Saved (version 2).")).to_be_visible()
    expect(page.get_by_role("listitem", name="Step wait")).to_contain_text("Wait P1D")
    nav(page, "Journeys").click()
    row = page.get_by_role("row").filter(has_text="Onboarding")
    expect(row.get_by_role("cell").nth(3)).to_have_text("1")  # entered, from the stats


def test_a_viewer_key_gets_the_same_screens_read_only(page, runtime, api, shop):
    sign_in(page, runtime.base_url, shop["viewer_key"])
    expect(page.get_by_text("viewer · read-only")).to_be_visible()
    expect(page.get_by_role("heading", name="Segments")).to_be_visible()
    expect(page.get_by_role("button", name="Create segment")).to_have_count(0)
    page.get_by_role("row").filter(has_text="VIP or local").get_by_role("button", name="Manage").click()
    expect(page.get_by_role("heading", name="VIP or local")).to_be_visible()
    members = next(s for s in api("GET", "/segments", shop["admin_key"])["items"] if s["name"] == "VIP or local")
    chart = page.get_by_role("img", name=re.compile(rf"^Members from .* to {members['member_count']} on "))
    expect(chart).to_be_visible()  # the size history, drawn
    expect(page.get_by_role("button", name="Save segment")).to_have_count(0)
    expect(page.get_by_role("button", name="Review and delete…")).to_have_count(0)
    expect(page.get_by_role("textbox", name="Segment name")).not_to_be_editable()
    nav(page, "Customer Overview").click()
    expect(page.get_by_role("region", name="Tags")).to_be_visible()
    expect(page.get_by_role("button", name="Save as segment")).to_have_count(0)
    nav(page, "Contacts").click()
    expect(page.get_by_role("button", name="Create tag")).to_have_count(0)
    nav(page, "Webhooks").click()
    expect(page.get_by_text("Only admin keys see and manage webhooks")).to_be_visible()


def test_a_tenant_without_the_feature_sees_why(page, runtime, api):
    closed = _tenant(api, "Closed Co", segments=False)
    sign_in(page, runtime.base_url, closed["admin_key"])
    expect(page.get_by_role("heading", name="Segments is not enabled for this tenant")).to_be_visible()
    nav(page, "Customer Overview").click()
    expect(page.get_by_role("heading", name="Segments is not enabled for this tenant")).to_be_visible()
    nav(page, "Contacts").click()  # contacts need no feature
    expect(page.get_by_role("heading", name="Contacts")).to_be_visible()


def test_a_wrong_key_is_refused_and_the_key_lives_only_in_session_storage(page, runtime, shop):
    page.goto(runtime.base_url + "/console")
    page.get_by_role("textbox", name="API key").fill("sgk_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That key is not known")
    page.problems.clear()  # the refused sign-in's 401 is reported by the browser, as it should be
    sign_in(page, runtime.base_url, shop["admin_key"])
    assert shop["admin_key"] not in page.url
    assert page.evaluate("() => sessionStorage.getItem('segments.api-key')") == shop["admin_key"]
    assert page.evaluate("() => localStorage.length") == 0 and page.context.cookies() == []


def test_hostile_contact_names_stay_text(page, runtime, api):
    tenant = _tenant(api, "Hostile names")
    key = tenant["admin_key"]
    name = '<img src=x onerror="window.__pwned=1">'
    contact = api("POST", "/contacts", key, {"external_id": "h-1", "email": "h@example.com", "first_name": name,
                                             "attributes": {"note": "<script>window.__pwned=2</script>"}})  # fmt: skip
    sign_in(page, runtime.base_url, key)
    nav(page, "Contacts").click()
    expect(page.get_by_role("link", name=name)).to_be_visible()
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_text("<script>window.__pwned=2</script>")).to_be_visible()
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert contact["id"] in page.url


# --- how it is served and used ----------------------------------------------------------------------------


class _Prefix(http.server.BaseHTTPRequestHandler):
    """API Gateway's stage prefix, played by a proxy: /api/… reaches the runtime's /…."""

    target = ""
    seen: ClassVar[list[str]] = []

    def _forward(self) -> None:
        self.seen.append(self.path)
        if not self.path.startswith("/api/"):
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(self.target + self.path[4:], data=self.rfile.read(length) if length else None,
                                         method=self.command)  # fmt: skip
        for name in ("Authorization", "Content-Type"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            response = urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        body = response.read()
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, *args: Any) -> None:
        pass


def test_the_console_works_under_a_stage_prefix(page, runtime, shop):
    _Prefix.target, _Prefix.seen = runtime.base_url, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Prefix)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/api"
        sign_in(page, base, shop["admin_key"])
        expect(page.get_by_role("row").filter(has_text="VIP or local")).to_be_visible()
        nav(page, "Customer Overview").click()
        expect(page.get_by_role("region", name="Tags")).to_be_visible()
        assert {"/api/console", "/api/console/app.js", "/api/me"} <= set(_Prefix.seen)
        assert any(path.startswith("/api/overview") for path in _Prefix.seen)
        assert not [path for path in _Prefix.seen if not path.startswith("/api/")]
    finally:
        server.shutdown()


CONTRAST = """() => {
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const parse = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const [r, g, b, a = 1] = parse(getComputedStyle(node).backgroundColor);
      if (a > 0.5) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const failures = [];
  for (const element of document.querySelectorAll("body *")) {
    const own = [...element.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const box = element.getBoundingClientRect();
    if (!own || box.width === 0 || getComputedStyle(element).visibility === "hidden") continue;
    const style = getComputedStyle(element);
    const [fr, fg, fb] = parse(style.color);
    const [l1, l2] = [luminance([fr, fg, fb]), luminance(background(element))].sort((x, y) => y - x);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const disabled = element.closest("button:disabled, select:disabled, input:disabled");
    if (!disabled && ratio < (large ? 3 : 4.5)) {
      failures.push(`${element.tagName} "${element.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
  }
  return failures;
}"""


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((control) => control.type !== "hidden" && control.getClientRects().length)
  .filter((control) => !(control.labels && control.labels.length) && !control.getAttribute("aria-label")
    && !(control.tagName === "BUTTON" && control.textContent.trim()))
  .map((control) => control.outerHTML.slice(0, 80))"""
"""Every visible control has a name: a label, an aria-label, or (buttons) its text."""

SCREENS = {
    "segments": "Segments", "segments/new": "Create segment", "overview": "Customer Overview",
    "mixer": "Segment Mixer", "contacts": "Contacts", "campaigns": "Campaigns",
    "triggers": "Triggers, announcements and challenges", "jobs": "Jobs", "mailbox": "Mailbox",
    "campaigns/new": "Create campaign", "triggers/triggers/new": "Create trigger",
    "triggers/announcements/new": "Create announcement", "triggers/challenges/new": "Create challenge",
    "webhooks": "Webhooks", "journeys": "Journeys", "journeys/new": "Create journey",
}  # fmt: skip


@pytest.mark.parametrize("screen", SCREENS)
def test_every_screen_has_aa_contrast_labelled_controls_and_fits_a_phone(browser, runtime, shop, screen):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    try:
        sign_in(page, runtime.base_url, shop["admin_key"])
        expect(page.get_by_role("heading", name="Segments", exact=True)).to_be_visible()
        page.goto(f"{runtime.base_url}/console#/{screen}")
        expect(page.get_by_role("heading", level=1, name=SCREENS[screen], exact=True)).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert page.evaluate(CONTRAST) == []
        assert page.evaluate(UNLABELLED) == []
        overflow = page.evaluate("() => document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{screen} is {overflow}px wider than a 390px screen"
        if screen == "segments/new":
            page.screenshot(path=str(SHOTS / "phone-create-segment.png"))
        assert problems == []
    finally:
        context.close()


def test_keyboard_alone_signs_in_and_moves_between_screens_with_visible_focus(page, runtime, shop):
    page.goto(runtime.base_url + "/console")
    expect(page.get_by_role("textbox", name="API key")).to_be_focused()  # the sign-in screen starts there
    page.keyboard.type(shop["admin_key"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Segments", exact=True)).to_be_visible()
    expect(page.get_by_role("main")).to_be_focused()  # a new screen: focus moves to its content
    focused = "() => [document.activeElement.textContent, getComputedStyle(document.activeElement).outlineStyle]"
    page.keyboard.press("Tab")
    walked = [page.evaluate(focused)]
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
        walked.append(page.evaluate(focused))
    assert walked == [["Create segment", "solid"], ["Sign out", "solid"], ["Mailbox", "solid"], ["Webhooks", "solid"]]
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    expect(page.get_by_role("main")).to_be_focused()


def test_no_key_reaches_the_runtimes_logs(runtime, shop):
    logged = "".join(runtime.banner) + "".join(runtime.logged)
    assert "request" in logged  # the requests above were logged…
    assert shop["admin_key"] not in logged and shop["viewer_key"] not in logged  # …without their keys
