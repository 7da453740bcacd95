from datetime import UTC, datetime, timedelta

from chalice import Chalice, Cron, Rate

from infra.local.scheduler import Scheduler


class FakeClock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


def test_schedules_fire_at_their_rate_and_cron_with_eventbridge_shaped_events():
    app = Chalice(app_name="scheduler-test")
    fired = []

    @app.schedule(Rate(5, unit=Rate.MINUTES))
    def every_five(event):
        fired.append(("every_five", event.to_dict()))

    @app.schedule(Cron(0, 12, "*", "*", "?", "*"))
    def noon(event):
        fired.append(("noon", event.to_dict()))

    clock = FakeClock(datetime(2026, 11, 22, 11, 58, tzinfo=UTC))
    scheduler = Scheduler(app, "us-east-1", clock=clock)
    assert {h.name: h.expression for h in scheduler.handlers} == {
        "every_five": "rate(5 minutes)",
        "noon": "cron(0 12 * * ? *)",
    }
    assert scheduler.fire_due() == []
    clock.now += timedelta(minutes=2)  # 12:00
    assert scheduler.fire_due() == ["noon"]
    clock.now += timedelta(minutes=3)  # 12:03
    assert scheduler.fire_due() == ["every_five"]
    assert scheduler.fire_due() == []
    clock.now += timedelta(minutes=5)
    assert scheduler.fire_due() == ["every_five"]
    _, event = fired[0]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"] == "2026-11-22T12:00:00Z" and event["resources"][0].endswith("rule/noon")


def test_a_failing_schedule_does_not_stop_the_others():
    app = Chalice(app_name="scheduler-fail")
    ran = []

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def broken(event):
        raise RuntimeError("nope")

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def healthy(event):
        ran.append(event)

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    scheduler = Scheduler(app, "us-east-1", clock=clock)
    clock.now += timedelta(minutes=1)
    assert sorted(scheduler.fire_due()) == ["broken", "healthy"]
    assert len(ran) == 1
