"""Operational metrics (CloudWatch embedded metric format) for the alarms of the deploy template: queue
records handled and failed, emails sent, jobs finished and failed — counts only, no personal data."""

from __future__ import annotations

import json

from chalicelib.resources import JOBS_DEAD_LETTER_QUEUE, JOBS_QUEUE
from tests.support.population import import_csv
from tests.support.queues import deliver, take_messages


def emitted(text: str) -> dict[str, float]:
    """Metric name → summed value over every EMF document printed."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                document[metric["Name"]] if isinstance(document[metric["Name"]], list) else [document[metric["Name"]]]
            )
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Segments"
    return totals


def test_jobs_and_queue_records_are_counted_and_a_failed_job_is_the_alarm_metric(api, app, tenant, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    job = import_csv(api, tenant.admin_key, "external_id,email\np-1,ana@example.com\n")
    chunks = [m for m in take_messages(JOBS_QUEUE) if m.get("job_id") == job["id"]]
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks) == []
    broken = import_csv(api, tenant.admin_key, "external_id\np-2\n")
    dead = [m for m in take_messages(JOBS_QUEUE) if m.get("job_id") == broken["id"]]
    assert deliver(app, "fail_dead_job_chunks", JOBS_DEAD_LETTER_QUEUE, dead) == []
    printed = capsys.readouterr().out
    totals = emitted(printed)
    assert totals["JobsSucceeded"] >= 1 and totals["JobsFailed"] >= 1
    assert totals["RecordsHandled"] >= 2
    assert "ana@example.com" not in "".join(line for line in printed.splitlines() if '"_aws"' in line)
