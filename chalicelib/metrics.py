"""Operational metrics as CloudWatch embedded metric format (Powertools): one JSON document per unit of work
on stdout, which Lambda's log stream turns into metrics in the ``Segments`` namespace — no API call.

Counted: queue records handled and failed (per handler), emails sent, jobs succeeded and failed. The
deploy template alarms on ``JobsFailed``; locally and in tests ``POWERTOOLS_METRICS_DISABLED`` keeps them
off the console. Names and counts only: never an address or another personal value.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = "Segments"


def count(dimensions: dict[str, str] | None = None, **counts: int) -> None:
    """Emit the non-zero ``counts`` as one EMF document (an instance per call: safe across threads)."""
    nonzero = {name: value for name, value in counts.items() if value}
    if not nonzero:
        return
    metrics = EphemeralMetrics(namespace=NAMESPACE, service="segments")
    for name, dimension in (dimensions or {}).items():
        metrics.add_dimension(name=name, value=dimension)
    for name, value in nonzero.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()
