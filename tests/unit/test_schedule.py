"""devstack.schedule: EventBridge's rate() and cron() dialect, as next fire times in UTC.

The expected times are worked out by hand from a calendar (January 2025 starts on a
Wednesday), not by the code under test. The cron examples are those of AWS's "cron
expressions reference" (EventBridge user guide), plus every wildcard it lists.
"""

from __future__ import annotations

import datetime as dt

import pytest

from devstack.schedule import (
    CronSchedule,
    RateSchedule,
    ScheduleError,
    aws_weekday,
    check_fires,
    parse_schedule,
)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


WED = at("2025-01-15T10:07:30")  # a Wednesday, mid-morning

# AWS's documented examples: the expression, a start, the next fire time after it.
AWS_EXAMPLES = [
    ("cron(0 10 * * ? *)", WED, "2025-01-16T10:00"),  # 10:00 every day
    ("cron(15 12 * * ? *)", WED, "2025-01-15T12:15"),  # 12:15 every day
    ("cron(0 18 ? * MON-FRI *)", WED, "2025-01-15T18:00"),  # 18:00 Monday to Friday
    ("cron(0 18 ? * MON-FRI *)", at("2025-01-17T18:00:00"), "2025-01-20T18:00"),  # Friday's, then Monday
    ("cron(0 8 1 * ? *)", WED, "2025-02-01T08:00"),  # 08:00 on the first of the month
    ("cron(0/15 * * * ? *)", WED, "2025-01-15T10:15"),  # every 15 minutes
    ("cron(0/10 * ? * MON-FRI *)", WED, "2025-01-15T10:10"),  # every 10 minutes, weekdays
    ("cron(0/10 * ? * MON-FRI *)", at("2025-01-17T23:55:00"), "2025-01-20T00:00"),
    ("cron(0/5 8-17 ? * MON-FRI *)", WED, "2025-01-15T10:10"),  # every 5 minutes 08:00-17:55 weekdays
    ("cron(0/5 8-17 ? * MON-FRI *)", at("2025-01-17T17:55:00"), "2025-01-20T08:00"),
    ("cron(0 9 ? * 2#1 *)", WED, "2025-02-03T09:00"),  # 09:00 on the first Monday of the month
    ("cron(0 0 L * ? *)", WED, "2025-01-31T00:00"),  # the last day of the month
    ("cron(0 0 L * ? *)", at("2025-01-31T00:00:00"), "2025-02-28T00:00"),
    ("cron(0 0 L * ? *)", at("2024-02-01T00:00:00"), "2024-02-29T00:00"),  # a leap year
    ("cron(0 12 ? * 3#2 *)", WED, "2025-02-11T12:00"),  # the second Tuesday (January's was the 14th)
    ("cron(0 12 3W * ? *)", WED, "2025-02-03T12:00"),  # the weekday nearest the 3rd: Monday
    ("cron(0 12 ? JAN,FEB,MAR * *)", at("2025-03-31T12:00:00"), "2026-01-01T12:00"),  # month list
    ("cron(0 12 1-15 * ? *)", WED, "2025-01-15T12:00"),  # day range
    ("cron(1/10 * * * ? *)", WED, "2025-01-15T10:11"),  # the 11th, 21st, 31st... minute
]


@pytest.mark.parametrize(("expression", "start", "expected"), AWS_EXAMPLES)
def test_aws_documented_examples_fire_when_aws_says(expression: str, start: dt.datetime, expected: str) -> None:
    assert parse_schedule(expression).next_after(start) == at(expected)


MORE_FORMS = [
    # Day-of-week counts from Sunday = 1; names are the same days.
    ("cron(0 12 ? * 1 *)", WED, "2025-01-19T12:00"),
    ("cron(0 12 ? * SUN *)", WED, "2025-01-19T12:00"),
    ("cron(0 12 ? * 7 *)", WED, "2025-01-18T12:00"),
    ("cron(0 12 ? * 1,7 *)", WED, "2025-01-18T12:00"),
    ("cron(0 10 ? * mon-fri *)", WED, "2025-01-16T10:00"),  # names in any case
    # L in day-of-week alone is its last day, Saturday; nL is the month's last such day.
    ("cron(0 0 ? * L *)", WED, "2025-01-18T00:00"),
    ("cron(0 12 ? * 5L *)", WED, "2025-01-30T12:00"),  # last Thursday
    ("cron(0 12 ? * FRIL *)", at("2025-02-01T00:00:00"), "2025-02-28T12:00"),  # last Friday
    ("cron(0 12 ? * TUE#5 *)", WED, "2025-04-29T12:00"),  # no fifth Tuesday until April
    # Day-of-month: L-n, W that stays inside the month, LW.
    ("cron(0 0 L-2 * ? *)", WED, "2025-01-29T00:00"),
    ("cron(0 12 15W * ? *)", WED, "2025-01-15T12:00"),  # a Wednesday: that day
    ("cron(0 12 15W * ? *)", at("2025-01-16T00:00:00"), "2025-02-14T12:00"),  # Saturday -> Friday
    ("cron(0 12 15W * ? *)", at("2025-06-01T00:00:00"), "2025-06-16T12:00"),  # Sunday -> Monday
    ("cron(0 12 1W * ? *)", at("2025-01-16T00:00:00"), "2025-02-03T12:00"),  # Saturday the 1st -> Monday
    ("cron(0 12 31W * ? *)", at("2025-08-01T00:00:00"), "2025-08-29T12:00"),  # Sunday the 31st -> Friday
    ("cron(0 12 31W * ? *)", at("2025-04-01T00:00:00"), "2025-05-30T12:00"),  # April has no 31st
    ("cron(0 12 LW * ? *)", at("2025-05-01T00:00:00"), "2025-05-30T12:00"),  # May 31 is a Saturday
    ("cron(0 0 31 * ? *)", at("2025-04-01T00:00:00"), "2025-05-31T00:00"),
    ("cron(0 0 29 2 ? *)", WED, "2028-02-29T00:00"),
    # Years: a value, a range, an increment.
    ("cron(0 0 1 1 ? 2027)", WED, "2027-01-01T00:00"),
    ("cron(0 0 1 1 ? 2030-2032)", WED, "2030-01-01T00:00"),
    ("cron(0 0 1 JUN ? 2024/3)", WED, "2027-06-01T00:00"),
    # Increments and wrapping ranges.
    ("cron(*/5 * * * ? *)", WED, "2025-01-15T10:10"),
    ("cron(10-50/20 * * * ? *)", WED, "2025-01-15T10:10"),
    ("cron(0 22-2 * * ? *)", at("2025-01-15T23:30:00"), "2025-01-16T00:00"),
    ("cron(0 22-2 * * ? *)", at("2025-01-16T02:30:00"), "2025-01-16T22:00"),
    ("cron(0 0 ? * FRI-MON *)", WED, "2025-01-17T00:00"),
    ("cron(0 0 1 NOV-FEB ? *)", at("2025-02-02T00:00:00"), "2025-11-01T00:00"),
    ("cron(0,30 * * * ? *)", WED, "2025-01-15T10:30"),
    ("cron(00 09 * * ? *)", WED, "2025-01-16T09:00"),  # leading zeros
    # A fire time exactly at the start belongs to the window before it.
    ("cron(0 10 * * ? *)", at("2025-01-15T10:00:00"), "2025-01-16T10:00"),
    ("cron(* * * * ? *)", at("2025-12-31T23:59:00"), "2026-01-01T00:00"),
]


@pytest.mark.parametrize(("expression", "start", "expected"), MORE_FORMS)
def test_every_wildcard_form(expression: str, start: dt.datetime, expected: str) -> None:
    assert parse_schedule(expression).next_after(start) == at(expected)


def test_a_weekday_schedule_over_a_weekend() -> None:
    schedule = parse_schedule("cron(0/30 16-17 ? * MON-FRI *)")
    moment, fires = at("2025-01-17T15:00:00"), []  # Friday afternoon
    for _ in range(6):
        upcoming = schedule.next_after(moment)
        assert upcoming is not None
        fires.append(f"{upcoming:%a %H:%M}")
        moment = upcoming
    assert fires == ["Fri 16:00", "Fri 16:30", "Fri 17:00", "Fri 17:30", "Mon 16:00", "Mon 16:30"]


def test_times_are_utc_whatever_the_zone_given() -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    start = dt.datetime(2025, 1, 15, 19, 7, tzinfo=tokyo)  # 10:07 UTC
    assert parse_schedule("cron(0 12 * * ? *)").next_after(start) == at("2025-01-15T12:00")
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("cron(0 12 * * ? *)").next_after(dt.datetime(2025, 1, 15))


def test_aws_weekday_numbers_sunday_one() -> None:
    days = [aws_weekday(dt.date(2025, 1, 19) + dt.timedelta(days=n)) for n in range(7)]  # from a Sunday
    assert days == [1, 2, 3, 4, 5, 6, 7]


INVALID_CRON = [
    ("cron(0 9 * * MON *)", "both set"),
    ("cron(0 9 * * * *)", "both set"),
    ("cron(0 9 7 * 2 *)", "exactly one must be '?'"),
    ("cron(0 9 ? * ? *)", "both '?'"),
    ("cron(? 9 * * ? *)", "only in day-of-month or day-of-week"),
    ("cron(0 9 * * ?)", "6 fields"),
    ("cron(0 0 9 * * ? *)", "6 fields"),  # Quartz's seconds field
    ("cron(60 * * * ? *)", "minutes: 60 is out of range 0-59"),
    ("cron(0 24 * * ? *)", "hours: 24 is out of range 0-23"),
    ("cron(0 0 0 * ? *)", "day-of-month: 0 is out of range 1-31"),
    ("cron(0 0 32 * ? *)", "day-of-month: 32 is out of range 1-31"),
    ("cron(0 0 1 13 ? *)", "month: 13 is out of range 1-12"),
    ("cron(0 0 1 JANUARY ? *)", "month: 'JANUARY' is not a value (1-12 or JAN-DEC)"),
    ("cron(0 0 ? * 0 *)", "day-of-week: 0 is out of range 1-7"),  # Unix cron's Sunday
    ("cron(0 0 ? * 8 *)", "day-of-week: 8 is out of range 1-7"),
    ("cron(0 0 ? * 2-6/2 *)", "'/' is not allowed"),
    ("cron(0 0 ? * 3#6 *)", "after '#' is 1-5"),
    ("cron(0 0 ? * 3#1,6#3 *)", "one expression"),  # AWS's own counter-example
    ("cron(0 0 ? * 8#1 *)", "out of range 1-7"),
    ("cron(0 0 ? * 6L,2 *)", "stand alone"),
    ("cron(0 0 L,15 * ? *)", "stand alone"),
    ("cron(0 0 1-LW * ? *)", "stand alone"),
    ("cron(0 0 32W * ? *)", "out of range 1-31"),
    ("cron(0 0 L-31 * ? *)", "at most L-30"),
    ("cron(0 0 1 * ? 1969)", "year: 1969 is out of range 1970-2199"),
    ("cron(0 0 1 * ? 2200)", "year: 2200 is out of range 1970-2199"),
    ("cron(0 0 1 * ? 2030-2025)", "runs backwards"),
    ("cron(0/0 * * * ? *)", "increment '0'"),
    ("cron(0/61 * * * ? *)", "increment '61'"),
    ("cron(5,,10 * * * ? *)", "empty item"),
    ("cron(a * * * ? *)", "minutes: 'A' is not a value"),
    ("cron(-5 * * * ? *)", "minutes: '' is not a value"),
    ("at(2025-01-15T10:00:00)", "expected rate(...) or cron(...)"),
    ("0 9 * * ? *", "expected rate(...) or cron(...)"),
]


def test_rates_count_from_the_start() -> None:
    started = at("2025-01-15T10:07:30")
    five = parse_schedule("rate(5 minutes)")
    assert isinstance(five, RateSchedule)
    assert five.next_after(started, started) == at("2025-01-15T10:12:30")
    assert five.next_after(at("2025-01-15T10:12:30"), started) == at("2025-01-15T10:17:30")
    assert five.next_after(at("2025-01-15T11:00:00"), started) == at("2025-01-15T11:02:30")
    assert five.next_after(at("2025-01-15T09:00:00"), started) == at("2025-01-15T10:12:30")  # before the start
    assert parse_schedule("rate(1 minute)").next_after(started, started) == at("2025-01-15T10:08:30")
    assert parse_schedule("rate(1 hour)").next_after(started, started) == at("2025-01-15T11:07:30")
    assert parse_schedule("rate(12 hours)").next_after(started, started) == at("2025-01-15T22:07:30")
    assert parse_schedule("rate(1 day)").next_after(started, started) == at("2025-01-16T10:07:30")
    assert parse_schedule("rate(7 days)").next_after(started, started) == at("2025-01-22T10:07:30")


INVALID_RATE = [
    ("rate(1 minutes)", "a value of 1 takes the unit 'minute', not 'minutes'"),
    ("rate(1 hours)", "takes the unit 'hour'"),
    ("rate(1 days)", "takes the unit 'day'"),
    ("rate(5 minute)", "a value of 5 takes the unit 'minutes', not 'minute'"),
    ("rate(0 minutes)", "positive whole number, not '0'"),
    ("rate(-1 minutes)", "positive whole number, not '-1'"),
    ("rate(1.5 hours)", "positive whole number, not '1.5'"),
    ("rate(30 seconds)", "unknown unit 'seconds'"),
    ("rate(2 weeks)", "unknown unit 'weeks'"),
    ("rate(5minutes)", "expected rate(value unit)"),
    ("rate(5)", "expected rate(value unit)"),
]


@pytest.mark.parametrize(("expression", "message"), INVALID_CRON + INVALID_RATE)
def test_what_eventbridge_refuses_is_refused_with_the_reason(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    assert message in str(caught.value)
    if expression.startswith(("cron(", "rate(")):
        assert str(caught.value).startswith(expression)  # the message names the expression


@pytest.mark.parametrize(
    "expression",
    ["cron(0 0 31 2 ? *)", "cron(0 0 30 FEB ? *)", "cron(0 0 1 1 ? 2020)", "cron(0 0 1 1 ? 2020-2024)"],
)
def test_a_schedule_that_never_fires_again_is_refused(expression: str) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(WED) is None
    with pytest.raises(ScheduleError, match="never fires after 2025-01-15T10:07Z"):
        check_fires(schedule, WED)


def test_check_fires_gives_the_next_time() -> None:
    assert check_fires(parse_schedule("cron(0 8 1 * ? *)"), WED) == at("2025-02-01T08:00")
    assert check_fires(parse_schedule("rate(5 minutes)"), WED) == at("2025-01-15T10:12:30")
