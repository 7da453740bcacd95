"""Physical names of the tables and queues the code talks to.

``infra/template.json`` declares the same resources (with their keys, DLQs and
redrive policies); ``tests/unit/test_infra_declaration.py`` fails if the two
disagree, so there is one declaration in practice.
"""

from __future__ import annotations

MAIN_TABLE = "segments-main"

JOBS_QUEUE = "segments-jobs"
"""Chunks of long jobs (imports, bulk tagging, tag and group clean-up)."""
JOBS_DEAD_LETTER_QUEUE = "segments-jobs-dlq"

CONTACT_CHANGES_QUEUE = "segments-contact-changes"
"""One message per contact change; consumed by membership and triggers."""
CONTACT_CHANGES_BULK_QUEUE = "segments-contact-changes-bulk"
"""The same messages when many come at once (imports, bulk tagging, events for many contacts, the outbox
relay): consumed in batches of up to 100 gathered over a 1 s window, so a bulk load drains fast, while a
lone change on the queue above is handled as soon as it arrives."""
CONTACT_CHANGES_DEAD_LETTER_QUEUE = "segments-contact-changes-dlq"

MEMBERSHIP_EVENTS_QUEUE = "segments-membership-events"
"""``segment.entered`` / ``segment.exited`` events (domain/membership.py); consumed by handlers/triggers.py."""
MEMBERSHIP_EVENTS_DEAD_LETTER_QUEUE = "segments-membership-events-dlq"

SEND_QUEUE = "segments-sends"
"""Campaign sends: one message per audience shard, then one per batch of ≤49 recipients (services/sending.py)."""
SEND_DEAD_LETTER_QUEUE = "segments-sends-dlq"

TRIGGER_RUNS_QUEUE = "segments-trigger-runs"
"""Scheduled and manual trigger runs: one message per batch of ≤100 contacts (services/trigger_runs.py)."""
TRIGGER_RUNS_DEAD_LETTER_QUEUE = "segments-trigger-runs-dlq"

SES_EVENTS_TOPIC = "segments-ses-events"
"""SES publishes its events of sent mail here (both configuration sets' event destinations)."""
SES_EVENTS_QUEUE = "segments-ses-events"
SES_EVENTS_DEAD_LETTER_QUEUE = "segments-ses-events-dlq"

TRACKED_CONFIGURATION_SET = "segments-campaigns"
"""The SES configuration set of mail whose opens and clicks are tracked: its event destination takes every event
type, ``open`` and ``click`` included, which is what makes SES add the open pixel and rewrite the links."""
UNTRACKED_CONFIGURATION_SET = "segments-untracked"
"""The same destination without ``open`` and ``click``: SES leaves the mail as it was written."""

WEBHOOKS_QUEUE = "segments-webhooks"
"""One message per (event, endpoint) delivery attempt; a failed attempt is queued again with a delay
(services/webhooks.py), so the queue's own retries only cover a worker that stopped mid-attempt."""
WEBHOOKS_DEAD_LETTER_QUEUE = "segments-webhooks-dlq"
"""Deliveries that failed every attempt, kept 14 days (and those whose worker kept stopping)."""

JOURNEYS_QUEUE = "segments-journeys"
"""Journey wake-ups: one message per (journey, up to 100 contacts) whose wait is over, queued by the minute
schedule from the due-time index (services/journey_flow.py)."""
JOURNEYS_DEAD_LETTER_QUEUE = "segments-journeys-dlq"

SNAPSHOT_BUCKET = "segments-snapshots"
"""Shard snapshots (storage/snapshots.py). Deployed, the bucket's name is generated and reaches the functions
as SEGMENTS_SNAPSHOT_BUCKET; this is the local name."""
