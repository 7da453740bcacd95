"""Fires the app's ``@app.schedule`` handlers at their rate or cron, as EventBridge would."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalice import Chalice
from chalice.app import ScheduledEventConfig, ScheduleExpression
from chalice.local import LambdaContext

from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.schedules import Cron, Rate, parse_schedule
from chalicelib.logs import logger


@dataclass
class ScheduledHandler:
    name: str
    expression: str
    schedule: Rate | Cron
    next_run: datetime


def scheduled_handlers(app: Chalice, now: datetime) -> list[ScheduledHandler]:
    handlers = []
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            text = expression.to_string() if isinstance(expression, ScheduleExpression) else expression
            schedule = parse_schedule(text)
            handlers.append(ScheduledHandler(source.name, text, schedule, schedule.next_after(now)))
    return handlers


def scheduled_event(name: str, moment: datetime, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": to_rfc3339(moment).replace(".000Z", "Z"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:123456789012:rule/{name}"],
        "detail": {},
    }


class Scheduler:
    def __init__(self, app: Chalice, region: str, clock: Callable[[], datetime] = system_clock) -> None:
        self.app = app
        self.region = region
        self.clock = clock
        self.handlers = scheduled_handlers(app, clock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fire_due(self) -> list[str]:
        """Run every handler whose time has come; return their names."""
        now = self.clock()
        fired = []
        for handler in self.handlers:
            if handler.next_run <= now:
                context = LambdaContext(function_name=handler.name, memory_size=1024, max_runtime_ms=900_000)
                try:
                    self.app.handler_map[handler.name](scheduled_event(handler.name, now, self.region), context)
                except Exception:
                    logger.exception("scheduled handler failed", extra={"handler": handler.name})
                handler.next_run = handler.schedule.next_after(now)
                fired.append(handler.name)
        return fired

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.fire_due()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
