"""Campaigns: drafts, templates, scheduling, pause / resume / cancel, preview, test sends, stats, recipients.

The rules are in chalicelib/domain/campaigns.py (lifecycle, stats) and
chalicelib/domain/templates.py (what a template may say); the sending itself
(audience snapshot, send workers) is chalicelib/services/sending.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.domain import ab_tests as ab_rules
from chalicelib.domain import campaigns as rules
from chalicelib.domain.attributes import BUILT_IN
from chalicelib.domain.campaigns import Campaign, StaleCampaign
from chalicelib.domain.clock import (
    EARLIEST,
    Clock,
    moment_field,
    stored_moment,
    system_clock,
    to_rfc3339,
)
from chalicelib.domain.contacts import SHARDS
from chalicelib.domain.durations import parse_duration
from chalicelib.domain.emails import is_valid_email
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed, changed_meanwhile
from chalicelib.domain.ids import new_id
from chalicelib.domain.templates import RenderFailed, Templates, check_templates, render
from chalicelib.domain.validation import validate
from chalicelib.services import dependents, mail, sending
from chalicelib.services.contacts import contact_view, resolve
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page
from chalicelib.services.segments import check_targets

MAX_NAME = 200
MAX_TEST_EMAILS = 5
_ids = {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 50}
_CONTENT = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
    "from": {"type": ["string", "null"], "maxLength": 254},
    "subject": {"type": "string", "minLength": 1, "maxLength": 4_000},
    "html": {"type": ["string", "null"]},
    "text": {"type": ["string", "null"]},
    "segments": _ids,
    "exclude_segments": _ids,
    "send_at": {"type": ["string", "null"], "maxLength": 40, "format": "date-time"},
    "tracking": {
        "type": ["boolean", "null"],
        "description": "Track opens and clicks (null, the default: as the tenant's settings.tracking says).",
    },
    "variants": {
        "type": ["array", "null"],
        "maxItems": ab_rules.MAX_VARIANTS,
        "items": ab_rules.VARIANT_SCHEMA,
        "description": "An A/B test's 2–4 contents; they replace subject, html and text (needs ab_test).",
    },
    "ab_test": ab_rules.AB_TEST_SCHEMA,
}
CREATE_CAMPAIGN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "subject", "segments"],
    "properties": _CONTENT,
}
PATCH_CAMPAIGN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": _CONTENT,
}
PREVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["contact_id"],
    "properties": {
        "contact_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "variant": {"type": "string", "maxLength": 40, "description": "An A/B variant (the first by default)."},
    },
}
TEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["emails"],
    "properties": {
        "emails": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_TEST_EMAILS,
            "items": {"type": "string", "maxLength": 254},
        },
        "variant": {"type": "string", "maxLength": 40, "description": "An A/B variant (the first by default)."},
    },
}
STATS_SCHEMA = {"type": "object", "additionalProperties": {"type": ["integer", "null"]}}
CAMPAIGN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "status", "stats"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "from": {"type": "string"},
        "subject": {"type": "string"},
        "html": {"type": ["string", "null"]},
        "text": {"type": ["string", "null"]},
        "segments": {"type": "array", "items": {"type": "string"}},
        "exclude_segments": {"type": "array", "items": {"type": "string"}},
        "send_at": {"type": ["string", "null"]},
        "tracking": {"type": ["boolean", "null"]},
        "variants": {"type": ["array", "null"], "items": {"type": "object"}},
        "ab_test": {"type": ["object", "null"]},
        "winner": {"type": ["string", "null"], "description": "The A/B test's winning variant, once chosen."},
        "winner_at": {"type": ["string", "null"]},
        "status": {
            "type": "string",
            "enum": [
                rules.DRAFT,
                rules.SCHEDULED,
                rules.SENDING,
                rules.PAUSED,
                rules.SENT,
                rules.CANCELLED,
                rules.FAILED,
            ],
        },
        "status_reason": {"type": ["string", "null"]},
        "stats": STATS_SCHEMA,
        "progress": {"type": "object"},
    },
}
RENDERED_SCHEMA = {
    "type": "object",
    "properties": {
        "subject": {"type": "string"},
        "html": {"type": ["string", "null"]},
        "text": {"type": ["string", "null"]},
    },
}
RECIPIENT_SCHEMA = {
    "type": "object",
    "properties": {
        "contact_id": {"type": "string"},
        "email": {"type": "string"},
        "status": {"type": "string"},
        "at": {"type": "string"},
        "reason": {"type": ["string", "null"]},
        "delivered_at": {"type": ["string", "null"], "description": "SES's first delivery event."},
        "opened_at": {"type": ["string", "null"], "description": "The first open (tracking pixel)."},
        "clicked_at": {"type": ["string", "null"], "description": "The first tracked link followed."},
        "variant": {"type": ["string", "null"], "description": "The A/B test variant this recipient got."},
    },
}


def campaign_view(campaign: Campaign, variant_stats: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """``variant_stats`` (GET of one A/B-tested campaign) go under ``stats.variants``, one entry per variant."""
    stats: dict[str, Any] = rules.stats(campaign.counters, campaign.audience, campaign.status)
    if campaign.variants and variant_stats is not None:
        empty = dict.fromkeys(ab_rules.VARIANT_COUNTERS, 0)
        stats["variants"] = {v["name"]: {**empty, **variant_stats.get(v["name"], {})} for v in campaign.variants}
    return {
        "id": campaign.id,
        "name": campaign.name,
        "from": campaign.sender,
        "subject": campaign.subject,
        "html": campaign.html,
        "text": campaign.text,
        "segments": campaign.segments,
        "exclude_segments": campaign.exclude_segments,
        "send_at": campaign.send_at,
        "tracking": campaign.tracking,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "version": campaign.version,
        "created_at": campaign.created_at,
        "updated_at": campaign.updated_at,
        "started_at": campaign.started_at,
        "finished_at": campaign.finished_at,
        "variants": campaign.variants,
        "ab_test": campaign.ab_test,
        "winner": campaign.winner,
        "winner_at": campaign.winner_at,
        "stats": stats,
        "progress": {
            "audience_shards_built": campaign.shards_done,
            "audience_shards_total": SHARDS,
            "batches_done": campaign.batches_done,
            "batches_total": campaign.batches_total,
        },
    }


def _require(ctx: TenantContext, campaign_id: str) -> Campaign:
    campaign = ctx.ports.campaigns.get(campaign_id)
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.", {"field": "id"})
    return campaign


def _check_send_at(value: str | None, clock: Clock) -> str | None:
    if value is None:
        return None
    moment = moment_field(value, "send_at")
    if moment <= clock():
        raise ValidationFailed("send_at", "send_at is in the past; leave it null to send when you press send.")
    return to_rfc3339(moment)


def check_sender(ctx: TenantContext, value: str | None) -> str:
    """The from address of a campaign or a trigger's email: given or the tenant's default, verified in SES."""
    sender = value or ctx.settings["sender"].get("email")
    if not sender:
        raise ValidationFailed("from", "Give a from address (or set settings.sender.email).")
    sender = sender.strip().lower()
    if not is_valid_email(sender):
        raise ValidationFailed("from", "from is not a valid email address.")
    if not ctx.ports.mailer.sender_verified(sender):
        raise ValidationFailed("from", f"{sender} is not a verified SES identity (nor is its domain).")
    return sender


def template_attributes(ctx: TenantContext) -> set[str]:
    """What ``contact.attributes.*`` a template may name: the built-in ones and the tenant's."""
    return set(BUILT_IN) | set(ctx.attribute_types)


def _checked(ctx: TenantContext, base: dict[str, Any], clock: Clock) -> dict[str, Any]:
    templates = check_templates(base["subject"], base.get("html"), base.get("text"), template_attributes(ctx))
    targets = check_targets(ctx, "segments", base["segments"], owner="campaign")
    exclusions = check_targets(ctx, "exclude_segments", base.get("exclude_segments") or [], owner="campaign", minimum=0)
    both = set(targets) & set(exclusions)
    if both:
        raise ValidationFailed("exclude_segments", f"{sorted(both)[0]} is both targeted and excluded.")
    return {
        "name": base["name"].strip(),
        "sender": check_sender(ctx, base.get("from")),
        "subject": templates.subject,
        "html": templates.html,
        "text": templates.text,
        "segments": targets,
        "exclude_segments": exclusions,
        "send_at": _check_send_at(base.get("send_at"), clock),
        "tracking": base.get("tracking"),
        **_checked_ab_test(ctx, base.get("variants"), base.get("ab_test")),
    }


def _checked_ab_test(
    ctx: TenantContext, variants: list[dict[str, Any]] | None, ab_test: dict[str, Any] | None
) -> dict[str, Any]:
    ab_rules.check(variants, ab_test, parse_duration)
    checked = []
    for index, variant in enumerate(variants or []):
        try:
            templates = check_templates(
                variant["subject"], variant.get("html"), variant.get("text"), template_attributes(ctx)
            )
        except ValidationFailed as problem:
            field = f"variants[{index}].{problem.details.get('field')}"
            raise ValidationFailed(field, f"variants[{index}]: {problem.message}") from None
        checked.append({"name": variant["name"], "subject": templates.subject, "html": templates.html,
                        "text": templates.text})  # fmt: skip
    return {"variants": checked or None, "ab_test": dict(ab_test) if checked and ab_test else None}


def create_campaign(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_CAMPAIGN_SCHEMA)
    fields = _checked(ctx, body, clock)
    now = to_rfc3339(clock())
    campaign = Campaign(id=new_id("campaign"), status=rules.DRAFT, version=1, created_at=now, updated_at=now, **fields)
    ctx.ports.campaigns.create(campaign)
    return campaign_view(campaign)


def get_campaign(ctx: TenantContext, campaign_id: str) -> dict[str, Any]:
    campaign = _require(ctx, campaign_id)
    return campaign_view(campaign, ctx.ports.sends.variant_stats(campaign_id) if campaign.variants else None)


def list_campaigns(ctx: TenantContext, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(f"campaigns:{tenant_id}", cursor, lambda start: ctx.ports.campaigns.page(limit_, start), campaign_view)


def update_campaign(ctx: TenantContext, campaign_id: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, PATCH_CAMPAIGN_SCHEMA)
    before = _require(ctx, campaign_id)
    rules.require_status(before.id, before.status, rules.EDITABLE, "be edited")
    current = {
        "name": before.name,
        "from": before.sender,
        "subject": before.subject,
        "html": before.html,
        "text": before.text,
        "segments": before.segments,
        "exclude_segments": before.exclude_segments,
        "send_at": before.send_at,
        "tracking": before.tracking,
        "variants": before.variants,
        "ab_test": before.ab_test,
    }
    if "send_at" not in body and before.send_at and (stored_moment(before.send_at) or EARLIEST) <= clock():
        current["send_at"] = None  # a schedule that passed while editing is not re-checked as "in the past"
    fields = _checked(ctx, {**current, **body}, clock)
    status = before.status
    if status == rules.SCHEDULED and fields["send_at"] is None:
        status = rules.DRAFT  # unscheduled
    after = replace(before, **fields, status=status, version=before.version + 1, updated_at=to_rfc3339(clock()))
    try:
        ctx.ports.campaigns.save_content(before, after)
    except StaleCampaign:
        raise changed_meanwhile(f"Campaign {campaign_id}") from None
    return campaign_view(after)


def delete_campaign(ctx: TenantContext, campaign_id: str, confirm: bool = False) -> None:
    campaign = _require(ctx, campaign_id)
    rules.require_status(campaign.id, campaign.status, rules.EDITABLE | rules.FINISHED, "be deleted")
    dependents.review("campaign", ctx, campaign.id, f"campaign {campaign.name!r}", confirm)
    try:
        ctx.ports.campaigns.delete(campaign)
    except StaleCampaign:
        raise changed_meanwhile(f"Campaign {campaign_id}", "status") from None
    dependents.release("campaign", ctx, campaign.id, f"campaign {campaign.name!r} was deleted")


# --- sending -------------------------------------------------------------------------------------------


def _require_published_segments(ctx: TenantContext, campaign: Campaign) -> None:
    if not campaign.segments:
        raise Conflict(f"Campaign {campaign.id} targets no segment; choose one first.", {"field": "segments"})
    for field in ("segments", "exclude_segments"):
        for index, segment_id in enumerate(getattr(campaign, field)):
            segment = ctx.ports.segments.get(segment_id)
            if segment is None:
                raise Conflict(
                    f"Segment {segment_id} no longer exists; edit the campaign.", {"field": f"{field}[{index}]"}
                )
            if segment.generation is None:
                raise Conflict(
                    f"Segment {segment_id} has not finished its first evaluation; send when it has.",
                    {"field": f"{field}[{index}]", "job_id": segment.job_id},
                )


def send_campaign(ctx: TenantContext, campaign_id: str, clock: Clock = system_clock) -> dict[str, Any]:
    """Send now, or schedule for ``send_at`` when that is still ahead."""
    campaign = _require(ctx, campaign_id)
    rules.require_status(campaign.id, campaign.status, {rules.DRAFT}, "be sent")
    _require_published_segments(ctx, campaign)
    if campaign.send_at and (stored_moment(campaign.send_at) or EARLIEST) > clock():
        scheduled = replace(campaign, status=rules.SCHEDULED, updated_at=to_rfc3339(clock()))
        try:
            ctx.ports.campaigns.save_content(campaign, scheduled)
        except StaleCampaign:
            raise changed_meanwhile(f"Campaign {campaign_id}", "status") from None
    elif not sending.start(ctx, campaign.id, {rules.DRAFT}, clock):
        raise changed_meanwhile(f"Campaign {campaign_id}", "status")
    return campaign_view(_require(ctx, campaign_id))


def start_due(
    due: Callable[[str], list[tuple[str, str]]],
    context_for: Callable[[str], TenantContext],
    clock: Clock = system_clock,
) -> int:
    """Start every scheduled campaign whose time has come (the minute schedule). ``due`` lists the
    (tenant, campaign) pairs due at a time; ``context_for`` makes each tenant's context."""
    started = 0
    for tenant_id, campaign_id in due(to_rfc3339(clock())):
        started += sending.start(context_for(tenant_id), campaign_id, {rules.SCHEDULED}, clock)
    return started


def pause_campaign(ctx: TenantContext, campaign_id: str) -> dict[str, Any]:
    campaign = _require(ctx, campaign_id)
    rules.require_status(campaign.id, campaign.status, {rules.SENDING}, "be paused")
    if not ctx.ports.campaigns.change_status(campaign.id, {rules.SENDING}, rules.PAUSED, "paused by a user"):
        raise changed_meanwhile(f"Campaign {campaign_id}", "status")
    return campaign_view(_require(ctx, campaign_id))


def resume_campaign(ctx: TenantContext, campaign_id: str) -> dict[str, Any]:
    campaign = _require(ctx, campaign_id)
    rules.require_status(campaign.id, campaign.status, {rules.PAUSED}, "be resumed")
    if not sending.resume(ctx, campaign.id):
        raise changed_meanwhile(f"Campaign {campaign_id}", "status")
    return campaign_view(_require(ctx, campaign_id))


def cancel_campaign(ctx: TenantContext, campaign_id: str, clock: Clock = system_clock) -> dict[str, Any]:
    campaign = _require(ctx, campaign_id)
    active = {rules.DRAFT, rules.SCHEDULED, rules.SENDING, rules.PAUSED}
    rules.require_status(campaign.id, campaign.status, active, "be cancelled")
    if not ctx.ports.campaigns.change_status(
        campaign.id,
        active,
        rules.CANCELLED,
        "cancelled by a user",
        finished_at=to_rfc3339(clock()),
    ):
        raise changed_meanwhile(f"Campaign {campaign_id}", "status")
    return campaign_view(_require(ctx, campaign_id))


# --- preview and test sends ----------------------------------------------------------------------------


def _templates(campaign: Campaign, variant: str | None = None) -> Templates:
    """The campaign's content, or one of its A/B variants (the first when none is named)."""
    if not campaign.variants:
        if variant is not None:
            raise ValidationFailed("variant", "This campaign has no A/B variants.")
        return Templates(subject=campaign.subject, html=campaign.html, text=campaign.text)
    chosen = next((v for v in campaign.variants if v["name"] == (variant or campaign.variants[0]["name"])), None)
    if chosen is None:
        raise ValidationFailed("variant", f"The campaign has no variant {variant!r}.")
    return Templates(subject=chosen["subject"], html=chosen.get("html"), text=chosen.get("text"))


def _rendered(
    campaign: Campaign, contact: dict[str, Any], unsubscribe_url: str, field: str, variant: str | None = None
) -> Any:
    templates = _templates(campaign, variant)
    try:
        return render(templates, contact, unsubscribe_url)
    except RenderFailed as problem:
        raise ValidationFailed(field, f"The campaign does not render for this contact: {problem}.") from None


def preview_campaign(ctx: TenantContext, campaign_id: str, body: Any) -> dict[str, Any]:
    validate(body, PREVIEW_SCHEMA)
    campaign = _require(ctx, campaign_id)
    contact = resolve(ctx, body["contact_id"])
    url = mail.unsubscribe_url(ctx.tenant_id, campaign.id, contact.email or "", inert=True)
    rendered = _rendered(campaign, contact_view(contact), url, "contact_id", body.get("variant"))
    return {"contact_id": contact.id, "subject": rendered.subject, "html": rendered.html, "text": rendered.text}


SAMPLE_CONTACT: dict[str, Any] = {
    "id": "ctc_sample",
    "external_id": None,
    "email": None,
    "first_name": "Sample",
    "last_name": "Contact",
    "group": None,
    "tags": [],
    "attributes": {},
}


def test_send(ctx: TenantContext, campaign_id: str, body: Any) -> dict[str, Any]:
    """Send the campaign now to ≤5 addresses, as the contact with that address if there is one; not in stats.
    Suppressed and unsubscribed addresses are refused like in a real send."""
    validate(body, TEST_SCHEMA)
    tenant_id = ctx.tenant_id
    campaign = _require(ctx, campaign_id)
    results = []
    for index, raw in enumerate(body["emails"]):
        email = raw.strip().lower()
        if not is_valid_email(email):
            raise ValidationFailed(f"emails[{index}]", f"{raw!r} is not a valid email address.")
    tracked = mail.tracked(ctx, campaign.tracking)  # as the recipients will get it
    for email in dict.fromkeys(e.strip().lower() for e in body["emails"]):
        suppression = ctx.ports.suppressions.get_suppression(email)
        if suppression:
            results.append({"email": email, "status": "suppressed", "reason": suppression.reason})
            continue
        contact_id = ctx.ports.contacts.find_contact_id(email=email)
        contact = ctx.ports.contacts.get_contact(contact_id) if contact_id else None
        view = contact_view(contact) if contact else {**SAMPLE_CONTACT, "email": email}
        url = mail.unsubscribe_url(tenant_id, campaign.id, email, inert=True)
        rendered = _rendered(campaign, view, url, "emails", body.get("variant"))
        marked = replace(rendered, subject=f"[Test] {rendered.subject}")
        tags = {"campaign_id": campaign.id, "test": "true"}  # no contact_id: its SES events count nothing
        outcome = mail.send_rendered(ctx, campaign.sender, email, marked, url, tags, tracked=tracked)
        results.append({"email": email, **outcome.view()})
    return {"items": results}


# --- stats and recipients ------------------------------------------------------------------------------


def recipients(
    ctx: TenantContext, campaign_id: str, status: str | None, limit_: int, cursor: str | None
) -> dict[str, Any]:
    campaign = _require(ctx, campaign_id)
    if status is not None and status not in rules.RECIPIENT_STATES:
        raise ValidationFailed("status", f"status is one of {', '.join(rules.RECIPIENT_STATES)}.")
    return page(
        f"campaign-recipients:{ctx.tenant_id}:{campaign.id}:{status}",
        cursor,
        lambda start: ctx.ports.sends.send_records(campaign.id, status, limit_, start),
        lambda item: {
            "contact_id": item.contact_id,
            "email": item.email,
            "status": item.state,
            "at": item.at,
            "reason": item.reason,
            "delivered_at": item.delivered_at,
            "opened_at": item.opened_at,
            "clicked_at": item.clicked_at,
            "variant": item.variant,
        },
    )


# --- segments the campaigns use ------------------------------------------------------------------------


def _campaigns_using(ctx: TenantContext, segment_id: str) -> list[Campaign]:
    return [
        c
        for c in ctx.ports.campaigns.all_campaigns()
        if c.status not in rules.FINISHED and segment_id in (*c.segments, *c.exclude_segments)
    ]


def _dependents(ctx: TenantContext, segment_id: str) -> list[dict[str, Any]]:
    return [
        {"type": "campaign", "id": c.id, "name": c.name, "status": c.status} for c in _campaigns_using(ctx, segment_id)
    ]


def _release(ctx: TenantContext, segment_id: str, reason: str) -> None:
    """A deleted segment leaves the campaigns that have not started; one left without targets returns to draft.
    Campaigns already sending keep the audience they took."""
    for campaign in _campaigns_using(ctx, segment_id):
        if campaign.status not in rules.EDITABLE:
            continue
        targets = [s for s in campaign.segments if s != segment_id]
        after = replace(
            campaign,
            segments=targets,
            exclude_segments=[s for s in campaign.exclude_segments if s != segment_id],
            status=campaign.status if targets else rules.DRAFT,
            status_reason=None if targets else f"{reason}; choose a segment to target",
            version=campaign.version + 1,
        )
        try:
            ctx.ports.campaigns.save_content(campaign, after)
        except StaleCampaign:
            _release(ctx, segment_id, reason)  # it changed meanwhile: look again
            return


DEPENDENTS: list[dependents.Registration] = [("segment", _dependents, _release)]
"""What campaigns depend on (registered by chalicelib/composition.py)."""
