"""The local scheduler: it refuses an app's unschedulable schedules when it is built, and
fires the others at their times on a clock the test moves (nothing sleeps)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.app import Chalice, Cron, Rate, ScheduledEventConfig

from devstack.events import EventEmulator, plan_schedules
from devstack.schedule import ScheduleError


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def to(self, text: str) -> None:
        self.now = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def no_clients(service: str) -> Any:
    raise AssertionError(f"a schedule-only app needs no {service} client")


Expression = str | Rate | Cron


def schedule_only_app(app_name: str, *schedules: tuple[str, Expression] | tuple[str, Expression, str]) -> Chalice:
    """An app whose handlers are do-nothing schedules, each (schedule name, expression[, handler
    name]); a handler is named like its schedule unless given a name."""
    app = Chalice(app_name=app_name)
    for name, expression, *handler_name in schedules:

        def handler(event: Any) -> None: ...

        handler.__name__ = handler_name[0] if handler_name else name  # Chalice names it "app.<function name>"
        app.schedule(expression, name=name)(handler)
    return app


def emulator(app: Chalice, clock: Clock, fired: list[tuple[str, str]] | None = None) -> EventEmulator:
    calls = fired if fired is not None else []

    def resolver(handler_string: str) -> Any:
        name = handler_string.rpartition(".")[2]
        return lambda event, context: calls.append((name, event["time"]))

    return EventEmulator(app, no_clients, resolver=resolver, clock=clock)


def test_an_unschedulable_schedule_stops_the_emulator_being_built() -> None:
    app = schedule_only_app(
        "bad",
        ("weekly_report", "cron(0 9 * * MON *)", "weekly"),
        ("fine", Rate(5, unit=Rate.MINUTES)),
        ("pulse", "rate(1 minutes)"),
        ("never", Cron(0, 0, 31, 2, "?", "*")),
    )

    with pytest.raises(ScheduleError) as caught:
        emulator(app, Clock(dt.datetime(2025, 1, 15, 10, 7, tzinfo=dt.UTC)))
    message = str(caught.value)
    # Every bad schedule, each with its name, its handler and what is wrong; not the good one.
    assert message.startswith("cannot schedule: ")
    assert "schedule 'weekly_report' (handler app.weekly): cron(0 9 * * MON *): day-of-month and day-of-week" in message
    assert "schedule 'pulse' (handler app.pulse): rate(1 minutes): a value of 1 takes the unit 'minute'" in message
    assert "schedule 'never' (handler app.never): cron(0 0 31 2 ? *): never fires after 2025-01-15T10:07Z" in message
    assert "'fine'" not in message


def test_the_apps_own_schedules_are_accepted() -> None:
    import app as iotcloud

    sources = [s for s in iotcloud.app.event_sources if isinstance(s, ScheduledEventConfig)]
    plan = plan_schedules(sources, dt.datetime(2025, 1, 15, 10, 7, 30, tzinfo=dt.UTC))
    fires = {name: upcoming for name, (_, upcoming) in plan.items()}
    assert fires["rollups"] == dt.datetime(2025, 1, 15, 10, 10, tzinfo=dt.UTC)  # cron(0/5 * * * ? *)
    assert fires["alerts_offline"] == dt.datetime(2025, 1, 15, 10, 8, 30, tzinfo=dt.UTC)  # rate(1 minute)
    assert fires["scaling_report"] == dt.datetime(2025, 1, 15, 11, 7, 30, tzinfo=dt.UTC)  # rate(1 hour)


def test_schedules_fire_at_their_times_once_each() -> None:
    app = schedule_only_app(
        "timed",
        ("quarterly", "cron(0/15 * ? * MON-FRI *)"),
        ("every_five", Rate(5, unit=Rate.MINUTES)),
        ("new_year", "cron(0 0 1 1 ? 2026)"),
    )

    clock = Clock(dt.datetime(2025, 12, 31, 23, 7, 30, tzinfo=dt.UTC))  # a Wednesday
    fired: list[tuple[str, str]] = []
    emu = emulator(app, clock, fired)
    emu.plan_schedules()  # what start() does: rate() counts from here

    clock.to("2025-12-31T23:12:29")
    assert emu.fire_due_schedules() == []
    clock.to("2025-12-31T23:12:30")
    assert emu.fire_due_schedules() == ["every_five"]
    assert emu.fire_due_schedules() == []  # not twice for one time
    clock.to("2025-12-31T23:15:00")
    assert emu.fire_due_schedules() == ["quarterly"]
    assert emu.next_fires()["quarterly"] == dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC)

    # The scheduler falls behind by hours: each schedule fires once, then plans from now.
    clock.to("2026-01-01T03:01:10")  # a Thursday
    assert sorted(emu.fire_due_schedules()) == ["every_five", "new_year", "quarterly"]
    assert emu.next_fires() == {
        "quarterly": dt.datetime(2026, 1, 1, 3, 15, tzinfo=dt.UTC),
        "every_five": dt.datetime(2026, 1, 1, 3, 2, 30, tzinfo=dt.UTC),
    }  # new_year's year field has run out: it is no longer planned
    assert fired == [
        ("every_five", "2025-12-31T23:12:30Z"),
        ("quarterly", "2025-12-31T23:15:00Z"),
        # Each event carries the time it was due, not the late moment it ran.
        ("quarterly", "2025-12-31T23:30:00Z"),
        ("every_five", "2025-12-31T23:17:30Z"),
        ("new_year", "2026-01-01T00:00:00Z"),
    ]

    # Weekends: the weekday schedule skips to Monday.
    clock.to("2026-01-02T23:50:00")  # Friday
    emu.fire_due_schedules()
    clock.to("2026-01-02T23:59:00")
    emu.fire_due_schedules()
    assert emu.next_fires()["quarterly"] == dt.datetime(2026, 1, 5, 0, 0, tzinfo=dt.UTC)


def test_a_failing_handler_does_not_stop_the_others() -> None:
    app = schedule_only_app(
        "failing",
        ("broken", Rate(1, unit=Rate.MINUTES)),
        ("working", Rate(1, unit=Rate.MINUTES)),
    )

    ran: list[str] = []

    def resolver(handler_string: str) -> Any:
        def handler(event: Any, context: Any) -> None:
            ran.append(handler_string)
            if handler_string.endswith("broken"):
                raise RuntimeError("boom")

        return handler

    clock = Clock(dt.datetime(2025, 1, 15, 10, 0, tzinfo=dt.UTC))
    emu = EventEmulator(app, no_clients, resolver=resolver, clock=clock)
    clock.to("2025-01-15T10:01:00")
    assert emu.fire_due_schedules() == ["working"]
    assert ran == ["app.broken", "app.working"]
    assert emu.next_fires()["broken"] == dt.datetime(2025, 1, 15, 10, 2, tzinfo=dt.UTC)


def test_devstack_up_exits_with_the_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import devstack.__main__ as cli

    app = schedule_only_app("bad", ("sunday_report", "cron(0 9 ? * 0 *)", "sunday"))

    class StackWithThisApp:
        """LocalStack builds its EventEmulator while it starts; here over the bad app."""

        def __init__(self, **_: Any) -> None: ...

        def __enter__(self) -> Any:
            return emulator(app, Clock(dt.datetime(2025, 1, 15, tzinfo=dt.UTC)))

        def __exit__(self, *exc: object) -> None: ...

    monkeypatch.setattr(cli, "LocalStack", StackWithThisApp)
    with pytest.raises(SystemExit) as caught:
        cli.main(["up"])
    assert str(caught.value.code).endswith(
        "cannot schedule: schedule 'sunday_report' (handler app.sunday): cron(0 9 ? * 0 *): "
        "day-of-week: 0 is out of range 1-7"
    )
