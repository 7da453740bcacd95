"""The tenant context: one tenant as a request or a batch of messages sees it.

Made once per request (from the caller's key) or per batch (from the tenant named in the messages) by
chalicelib/composition.py, and passed down explicitly: the ports bound to the tenant, its effective
settings, and what rules keep asking for — its segments, triggers, challenges, attribute types and the
names criteria may use — read at most once. A service that writes segments calls :meth:`TenantContext.segments_changed`
so later reads in the same request see the write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from chalicelib.domain.criteria import Vocabulary
from chalicelib.domain.engagements import CHALLENGE, Engagement
from chalicelib.domain.engine import CompiledCriteria, compile_criteria
from chalicelib.domain.journeys import Journey
from chalicelib.domain.segments import INVALID, Segment
from chalicelib.domain.settings import limit
from chalicelib.domain.triggers import Trigger
from chalicelib.domain.webhooks import Webhook
from chalicelib.ports import TenantPorts
from chalicelib.ports.shards import ShardReader
from chalicelib.services.principal import Principal


class TenantContext:
    def __init__(
        self,
        ports: TenantPorts,
        settings: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        principal: Principal | None = None,
    ) -> None:
        self.ports = ports
        self.principal = principal
        self._settings = settings
        self._segments: list[Segment] | None = None
        self._compiled: dict[str, CompiledCriteria] = {}

    @property
    def tenant_id(self) -> str:
        return self.ports.tenant_id

    @cached_property
    def settings(self) -> Mapping[str, Any]:
        """The tenant's effective settings (domain/settings.py defaults filled in)."""
        return self._settings() if callable(self._settings) else self._settings

    def limit(self, name: str) -> int:
        return limit(self.settings, name)

    @property
    def segments(self) -> list[Segment]:
        """Every segment of the tenant, read once (until :meth:`segments_changed`)."""
        if self._segments is None:
            self._segments = self.ports.segments.all_segments()
        return self._segments

    def segments_changed(self) -> None:
        self._segments = None
        self._compiled.clear()

    def compiled(self, segment: Segment) -> CompiledCriteria:
        """``segment``'s criteria compiled (with the segments it includes), once per context: a batch of
        contact changes evaluates every segment for every contact. Raises BrokenReference when an
        included segment is gone."""
        if segment.id not in self._compiled:
            self._compiled[segment.id] = self.compile(segment.criteria)
        return self._compiled[segment.id]

    def compile(self, criteria: dict[str, Any]) -> CompiledCriteria:
        """Any criteria (a segment's, a trigger's conditions) compiled against the tenant's attribute types
        and segments. Raises BrokenReference when a segment they include is gone."""
        library = {s.id: s.criteria for s in self.segments}
        return compile_criteria(criteria, self.attribute_types, library.get)

    @cached_property
    def triggers(self) -> list[Trigger]:
        """Every trigger of the tenant, read once: what a batch of changes or membership events fires."""
        return self.ports.triggers.all_triggers()

    @cached_property
    def journeys(self) -> list[Journey]:
        """Every journey of the tenant, read once: what a batch of changes or membership events enters or moves."""
        return self.ports.journeys.all_journeys()

    @cached_property
    def webhooks(self) -> list[Webhook]:
        """Every webhook endpoint of the tenant, read once: where a batch's events are reported."""
        return self.ports.webhooks.all_webhooks()

    @cached_property
    def challenges(self) -> list[Engagement]:
        """Every challenge of the tenant, read once: what a batch of changes may complete."""
        return self.ports.engagements.all_of(CHALLENGE)

    @cached_property
    def shards(self) -> ShardReader:
        """How this context reads whole shards: snapshots patched with what changed (services/shards.py)."""
        from chalicelib.services import shards  # it starts compaction jobs, which take a context

        return shards.SnapshotShards(
            self.ports.contacts,
            self.ports.snapshots,
            self.settings["snapshots"],
            lambda due: shards.start_compaction(self, due),
        )

    @cached_property
    def attribute_types(self) -> dict[str, str]:
        return self.ports.catalog.attribute_types()

    def vocabulary(self, segment_id: str | None = None) -> Vocabulary:
        """What criteria may name: usable tags and groups, attributes with their types, and segments
        (``segment_id``: the segment being edited, which may not include itself)."""
        return Vocabulary(
            tags=frozenset(self.usable_tags),
            groups=frozenset(self._usable_groups),
            attributes=self.attribute_types,
            segments={s.id: s.references for s in self.segments},
            invalid_segments={s.id: s.status_reason or "invalid" for s in self.segments if s.status == INVALID},
            tag_limit=self.limit("tags_per_segment"),
            segment_id=segment_id,
        )

    @cached_property
    def usable_tags(self) -> set[str]:
        """Tags that exist and are not being deleted."""
        return self.ports.catalog.usable_tag_names()

    @cached_property
    def _usable_groups(self) -> set[str]:
        return self.ports.catalog.usable_group_ids()
