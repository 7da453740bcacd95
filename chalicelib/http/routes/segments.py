"""Segments: criteria, preview, members, evaluation, overlap, overview, deletion with review.

Every route here needs the tenant's ``segments`` feature.
"""

from __future__ import annotations

from chalice import Response

from chalicelib.domain import segments as segment_rules
from chalicelib.domain.contacts import CONTACT_SCHEMA
from chalicelib.domain.values import whole_number
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.schemas import CONFIRM_QUERY, JOB_SCHEMA, list_of, page_of
from chalicelib.services import overview, segments

blueprint = ApiBlueprint(__name__)
FEATURE = {"feature": "segments", "tag": "segments"}

SEGMENT_SCHEMA = {
    "type": "object",
    "required": ["id", "name", "criteria", "member_count", "status", "version"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "criteria": {"type": "object"},
        "member_count": {"type": ["integer", "null"]},
        "status": {"enum": ["evaluating", "ready", "failed", "invalid"]},
        "status_reason": {"type": ["string", "null"]},
        "version": {"type": "integer"},
        "evaluated_version": {"type": ["integer", "null"]},
        "evaluated_at": {"type": ["string", "null"]},
        "job_id": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "segments": {"type": "array", "items": {"type": "string"}},
        "time_dependent": {"type": "boolean"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}
VERSION_SCHEMA = {
    "type": "object",
    "required": ["version", "name", "criteria", "saved_at"],
    "properties": {
        "version": {"type": "integer"},
        "name": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "criteria": {"type": "object"},
        "saved_at": {"type": "string"},
    },
}
PREVIEW_RESULT_SCHEMA = {
    "type": "object",
    "required": ["count", "sample"],
    "properties": {
        "count": {"type": "integer"},
        "contacts_evaluated": {"type": "integer"},
        "sample": {"type": "array", "items": CONTACT_SCHEMA},
        "criteria": {"type": "object"},
        "evaluated_at": {"type": "string"},
    },
}
OVERLAP_SCHEMA = {
    "type": "object",
    "required": ["segments", "pairs"],
    "properties": {
        "segments": {"type": "array", "items": {"type": "object"}},
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["a", "b", "both", "jaccard"],
                "properties": {
                    "a": {"type": "string"},
                    "b": {"type": "string"},
                    "both": {"type": "integer"},
                    "only_a": {"type": "integer"},
                    "only_b": {"type": "integer"},
                    "jaccard": {"type": "number"},
                },
            },
        },
    },
}
DEPENDENT_SCHEMA = {
    "type": "object",
    "required": ["type", "id", "name"],
    "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "name": {"type": "string"}},
}


@blueprint.operation(
    "POST",
    "/segments",
    summary="Create a segment (its first evaluation starts at once)",
    access=Access.ADMIN,
    status=201,
    request_schema=segment_rules.CREATE_SEGMENT_SCHEMA,
    response_schema=SEGMENT_SCHEMA,
    **FEATURE,
)
def create_segment(call: Call) -> dict:
    return segments.create_segment(call.context, segment_rules.draft_from(call.body))


@blueprint.operation(
    "GET",
    "/segments",
    summary="List segments",
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of(SEGMENT_SCHEMA),
    **FEATURE,
)
def list_segments(call: Call) -> dict:
    return segments.list_segments(call.context, *call.page())


@blueprint.operation(
    "POST",
    "/segments/preview",
    summary="Count and sample unsaved criteria",
    access=Access.VIEWER,
    request_schema=segment_rules.PREVIEW_SCHEMA,
    response_schema=PREVIEW_RESULT_SCHEMA,
    **FEATURE,
)
def preview(call: Call) -> dict:
    return segments.preview(call.context, segment_rules.preview_from(call.body))


@blueprint.operation(
    "GET",
    "/segments/overlap",
    summary="Pairwise overlap of 2-10 segments (both, only each, Jaccard index)",
    access=Access.VIEWER,
    query={"ids": {"schema": {"type": "string"}, "required": True, "description": "seg_a,seg_b,…"}},
    response_schema=OVERLAP_SCHEMA,
    **FEATURE,
)
def overlap(call: Call) -> dict:
    return segments.overlap(call.context, call.query.get("ids"))


@blueprint.operation(
    "GET",
    "/segments/{segment_id}",
    summary="A segment with its status and member count",
    access=Access.VIEWER,
    response_schema=SEGMENT_SCHEMA,
    **FEATURE,
)
def get_segment(call: Call, segment_id: str) -> dict:
    return segments.get_segment(call.context, segment_id)


@blueprint.operation(
    "PATCH",
    "/segments/{segment_id}",
    summary="Change name, description or criteria (a new version; criteria changes re-evaluate)",
    access=Access.ADMIN,
    request_schema=segment_rules.PATCH_SEGMENT_SCHEMA,
    response_schema=SEGMENT_SCHEMA,
    **FEATURE,
)
def update_segment(call: Call, segment_id: str) -> dict:
    return segments.update_segment(call.context, segment_id, segment_rules.changes_from(call.body))


@blueprint.operation(
    "DELETE",
    "/segments/{segment_id}",
    summary="Delete a segment (409 confirmation_required listing its dependents, unless ?confirm=true)",
    description="Tags stay. Segments that include this one become invalid and say why.",
    access=Access.ADMIN,
    status=204,
    query=CONFIRM_QUERY,
    **FEATURE,
)
def delete_segment(call: Call, segment_id: str) -> None:
    segments.delete_segment(call.context, segment_id, call.flag("confirm"))


@blueprint.operation(
    "GET",
    "/segments/{segment_id}/versions",
    summary="The segment's saved versions, newest first",
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of(VERSION_SCHEMA),
    **FEATURE,
)
def versions(call: Call, segment_id: str) -> dict:
    return segments.versions(call.context, segment_id, *call.page())


@blueprint.operation(
    "GET",
    "/segments/{segment_id}/members",
    summary="Members of the segment's latest finished evaluation",
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of(CONTACT_SCHEMA),
    **FEATURE,
)
def members(call: Call, segment_id: str) -> dict:
    return segments.members(call.context, segment_id, *call.page())


@blueprint.operation(
    "GET",
    "/segments/{segment_id}/members.csv",
    summary="Members as CSV (the import's columns plus id), a page at a time",
    description="Up to `limit` rows (default 5,000, at most 10,000). When more remain, the `X-Next-Cursor` "
    'header and a `Link: <…>; rel="next"` header give the next page.',
    access=Access.VIEWER,
    query={
        "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": segments.CSV_PAGE_MAX}},
        "cursor": PAGE_QUERY["cursor"],
    },
    response_content_type="text/csv",
    **FEATURE,
)
def members_csv(call: Call, segment_id: str) -> Response:
    size = whole_number(call.query.get("limit"), "limit", 1, segments.CSV_PAGE_MAX, default=segments.CSV_PAGE_DEFAULT)
    text, next_cursor = segments.members_csv(call.context, segment_id, size, call.query.get("cursor"))
    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{segment_id}-members.csv"',
    }
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
        size = f"limit={call.query['limit']}&" if "limit" in call.query else ""
        headers["Link"] = f'</segments/{segment_id}/members.csv?{size}cursor={next_cursor}>; rel="next"'
    return Response(body=text, status_code=200, headers=headers)


@blueprint.operation(
    "POST",
    "/segments/{segment_id}/evaluate",
    summary="Evaluate the segment again over every contact (a job)",
    access=Access.ADMIN,
    status=202,
    response_schema=JOB_SCHEMA,
    **FEATURE,
)
def evaluate(call: Call, segment_id: str) -> dict:
    return segments.evaluate(call.context, segment_id)


@blueprint.operation(
    "GET",
    "/segments/{segment_id}/history",
    summary="The segment's size over time: a point per UTC day (members, entered, exited), oldest first",
    description="Kept 400 days. A day without a change carries the day before's members; today's members are the "
    "segment's current count; days before its first evaluation are left out.",
    access=Access.VIEWER,
    query={"days": {"schema": {"type": "integer", "minimum": 1, "maximum": 400, "default": 30}}},
    response_schema=list_of(
        {
            "type": "object",
            "required": ["date", "members", "entered", "exited"],
            "properties": {
                "date": {"type": "string", "format": "date"},
                "members": {"type": ["integer", "null"]},
                "entered": {"type": "integer"},
                "exited": {"type": "integer"},
            },
        }
    ),
    **FEATURE,
)
def size_history(call: Call, segment_id: str) -> dict:
    return segments.size_history(call.context, segment_id, call.query.get("days"))


@blueprint.operation(
    "GET",
    "/segments/{segment_id}/dependents",
    summary="What targets or includes this segment (reviewed before deletion)",
    access=Access.VIEWER,
    response_schema=list_of(DEPENDENT_SCHEMA),
    **FEATURE,
)
def dependents(call: Call, segment_id: str) -> dict:
    return segments.dependents_of(call.context, segment_id)


@blueprint.operation(
    "GET",
    "/overview",
    summary="Contacts counted per tag, group and attribute value, each with the criteria that selects it",
    access=Access.VIEWER,
    query={
        "facets": {
            "schema": {"type": "string", "default": "tags,group"},
            "description": "Comma-separated: tags, group, attributes.<name>.",
        },
        "top": {"schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    },
    response_schema={"type": "object", "required": ["total", "facets"]},
    **FEATURE,
)
def customer_overview(call: Call) -> dict:
    return overview.overview(call.context, call.query)
