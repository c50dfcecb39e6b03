"""EventBridge schedule expressions, `rate()` and `cron()`, turned into fire times (UTC).

The dialect is AWS's, not Unix cron's (the EventBridge user guide's "cron expressions
reference" is the specification):

- six fields: minutes hours day-of-month month day-of-week year;
- exactly one of day-of-month and day-of-week is `?`;
- day-of-week counts 1-7 from SUNDAY (SUN-SAT), months are 1-12 or JAN-DEC, years 1970-2199;
- `,` lists, `-` ranges, `*` and `/` increments in every field but day-of-week (which has no `/`);
- day-of-month: `L` (last day), `L-n` (n days before it), `nW` (the weekday nearest day n,
  inside the month), `LW` (the last weekday);
- day-of-week: `L` (Saturday, the last day of the week), `nL` (the last day n of the month),
  `n#k` (the k-th day n of the month; alone in its field).

Ranges that wrap (`FRI-MON`, `22-2`, `NOV-FEB`) run through the field's end, as in Quartz,
whose syntax AWS's derives from; years do not wrap. A rate runs every period from the moment
its schedule starts (for EventBridge, when the rule is created; here, when the stack starts).

This is not a library because the parsers on PyPI get documented forms wrong (checked
against AWS's examples and the forms above): pyawscron 1.0.7 accepts both day fields set, years
outside 1970-2199 and seven fields, and crashes on `LW`, on day 29-31 and on wrapping ranges;
aws-croniter 2.1.1 rejects a stepped year (`2025/2`), never fires `L` in day-of-week and
crashes on `LW`; croniter 7 reads day-of-week as Unix cron (1 = Monday, so `2#1` is the first
Tuesday); cronsim 2.8 takes no year field.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

UTC = dt.UTC

MONTH_NAMES = {name.upper(): n for n, name in enumerate(calendar.month_abbr) if name}
# AWS numbers the days of the week from Sunday: 1 = SUN ... 7 = SAT.
WEEKDAY_NAMES = {name: n for n, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
SATURDAY = WEEKDAY_NAMES["SAT"]
MAX_NTH_WEEKDAY = 5  # no month holds a sixth Tuesday
RATE_UNITS = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}


class ScheduleError(ValueError):
    """A schedule expression that EventBridge would refuse, or that can never fire."""


def aws_weekday(day: dt.date) -> int:
    """The day of the week as AWS numbers it (1 = Sunday ... 7 = Saturday)."""
    return day.isoweekday() % 7 + 1


@dataclass(frozen=True)
class _Field:
    """One of the six cron fields: its bounds, its names and whether a range may wrap."""

    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    cyclic: bool = True
    steps: bool = True

    @property
    def span(self) -> int:
        return self.high - self.low + 1

    def number(self, text: str) -> int:
        if text in self.names:
            return self.names[text]
        if not text.isdigit():
            allowed = f"{self.low}-{self.high}"
            if self.names:
                by_value = sorted(self.names, key=self.names.__getitem__)
                allowed += f" or {by_value[0]}-{by_value[-1]}"
            raise ScheduleError(f"{self.name}: {text!r} is not a value ({allowed})")
        value = int(text)
        if not self.low <= value <= self.high:
            raise ScheduleError(f"{self.name}: {value} is out of range {self.low}-{self.high}")
        return value

    def values(self, text: str) -> tuple[int, ...]:
        """The values a field's list of `*`, `n`, `a-b` and `.../step` items selects, sorted."""
        chosen: set[int] = set()
        for item in text.split(","):
            if not item:
                raise ScheduleError(f"{self.name}: empty item in list {text!r}")
            chosen.update(self._item(item))
        return tuple(sorted(chosen))

    def _item(self, item: str) -> list[int]:
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not self.steps:
                raise ScheduleError(f"{self.name}: '/' is not allowed here (AWS allows , - * ? L # in day-of-week)")
            if not step_text.isdigit() or not 1 <= int(step_text) <= self.span:
                raise ScheduleError(f"{self.name}: increment {step_text!r} must be a whole number 1-{self.span}")
            step = int(step_text)
        if base == "*":
            first, last = self.low, self.high
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            first, last = self.number(first_text), self.number(last_text)
            if first > last and not self.cyclic:
                raise ScheduleError(f"{self.name}: range {base!r} runs backwards")
        else:
            first = self.number(base)
            # `5/15` starts at 5 and runs to the field's end; a bare `5` is just 5.
            last = self.high if slash else first
        count = (last - first) % self.span + 1 if self.cyclic else last - first + 1
        return [self.low + (first - self.low + i) % self.span for i in range(0, count, step)]


MINUTES = _Field("minutes", 0, 59)
HOURS = _Field("hours", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _Field("day-of-week", 1, 7, WEEKDAY_NAMES, steps=False)
YEAR = _Field("year", 1970, 2199, cyclic=False)


# --- The day fields: each turns (year, month) into the days it fires on -----------------------


@dataclass(frozen=True)
class _DaysOfMonth:
    days: tuple[int, ...]

    def days_in(self, year: int, month: int) -> list[int]:
        last = calendar.monthrange(year, month)[1]
        return [d for d in self.days if d <= last]


@dataclass(frozen=True)
class _LastDay:
    before: int = 0  # `L-3`: three days before the last

    def days_in(self, year: int, month: int) -> list[int]:
        day = calendar.monthrange(year, month)[1] - self.before
        return [day] if day >= 1 else []


@dataclass(frozen=True)
class _NearestWeekday:
    day: int | None  # None: the last day of the month (`LW`)

    def days_in(self, year: int, month: int) -> list[int]:
        last = calendar.monthrange(year, month)[1]
        target = last if self.day is None else self.day
        if target > last:
            return []  # `31W` does not fire in a 30-day month, as `31` does not
        weekday = aws_weekday(dt.date(year, month, target))
        # The nearest Monday-Friday, never leaving the month: Saturday the 1st moves to Monday
        # the 3rd, Sunday the last moves to Friday.
        if weekday == SATURDAY:
            target = target + 2 if target == 1 else target - 1
        elif weekday == WEEKDAY_NAMES["SUN"]:
            target = target - 2 if target == last else target + 1
        return [target]


@dataclass(frozen=True)
class _Weekdays:
    weekdays: tuple[int, ...]

    def days_in(self, year: int, month: int) -> list[int]:
        last = calendar.monthrange(year, month)[1]
        return [d for d in range(1, last + 1) if aws_weekday(dt.date(year, month, d)) in self.weekdays]


@dataclass(frozen=True)
class _LastWeekday:
    weekday: int  # `5L`: the last Thursday

    def days_in(self, year: int, month: int) -> list[int]:
        last = calendar.monthrange(year, month)[1]
        back = (aws_weekday(dt.date(year, month, last)) - self.weekday) % 7
        return [last - back]


@dataclass(frozen=True)
class _NthWeekday:
    weekday: int
    nth: int  # `3#2`: the second Tuesday

    def days_in(self, year: int, month: int) -> list[int]:
        first = (self.weekday - aws_weekday(dt.date(year, month, 1))) % 7 + 1
        day = first + 7 * (self.nth - 1)
        return [day] if day <= calendar.monthrange(year, month)[1] else []


_DayRule = _DaysOfMonth | _LastDay | _NearestWeekday | _Weekdays | _LastWeekday | _NthWeekday
_LAST_BEFORE = re.compile(r"^L-(\d+)$")
_NEAREST = re.compile(r"^(\d+)W$")


def _day_of_month(text: str) -> _DayRule:
    if text == "L":
        return _LastDay()
    if text == "LW":
        return _NearestWeekday(None)
    if before := _LAST_BEFORE.match(text):
        offset = int(before.group(1))
        if offset > DAY_OF_MONTH.high - 1:
            raise ScheduleError(f"day-of-month: L-{offset}: at most L-{DAY_OF_MONTH.high - 1}")
        return _LastDay(offset)
    if nearest := _NEAREST.match(text):
        return _NearestWeekday(DAY_OF_MONTH.number(nearest.group(1)))
    if "L" in text or "W" in text:
        raise ScheduleError(f"day-of-month: {text!r}: L, L-n, nW and LW stand alone, not in lists or ranges")
    return _DaysOfMonth(DAY_OF_MONTH.values(text))


def _day_of_week(text: str) -> _DayRule:
    if "#" in text:
        weekday_text, _, nth_text = text.partition("#")
        if "," in text or "-" in weekday_text:
            raise ScheduleError(f"day-of-week: {text!r}: with '#' the field holds one expression (as 3#2)")
        if not nth_text.isdigit() or not 1 <= int(nth_text) <= MAX_NTH_WEEKDAY:
            raise ScheduleError(f"day-of-week: {text!r}: the number after '#' is 1-{MAX_NTH_WEEKDAY}")
        return _NthWeekday(DAY_OF_WEEK.number(weekday_text), int(nth_text))
    if text == "L":
        return _Weekdays((SATURDAY,))
    if text.endswith("L") and "," not in text and "-" not in text:
        return _LastWeekday(DAY_OF_WEEK.number(text[:-1]))
    # No weekday's name ends in L, so any item that does is an `L` form inside a list or range.
    if any(item.endswith("L") for item in re.split(r"[,-]", text)):
        raise ScheduleError(f"day-of-week: {text!r}: L and nL stand alone, not in lists or ranges")
    return _Weekdays(DAY_OF_WEEK.values(text))


# --- Schedules ----------------------------------------------------------------------------------


def _next_minute(moment: dt.datetime) -> dt.datetime:
    """The first whole minute strictly after `moment`, in UTC."""
    if moment.tzinfo is None:
        raise ValueError("schedule times are timezone-aware (UTC)")
    return moment.astimezone(UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed `cron(...)`: fires on every minute all six fields select."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: _DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]

    def next_after(self, moment: dt.datetime, started: dt.datetime | None = None) -> dt.datetime | None:
        """The first fire time strictly after `moment` (None: it never fires again).

        `started` is ignored: cron times do not depend on when the schedule began.
        """
        start = _next_minute(moment)
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for day in self.days.days_in(year, month):
                    date = (year, month, day)
                    today = (start.year, start.month, start.day)
                    if date < today:
                        continue
                    for hour in self.hours:
                        if date == today and hour < start.hour:
                            continue
                        for minute in self.minutes:
                            if date == today and hour == start.hour and minute < start.minute:
                                continue
                            return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)
        return None


@dataclass(frozen=True)
class RateSchedule:
    """A parsed `rate(...)`: fires every `period` from the moment the schedule started."""

    expression: str
    period: dt.timedelta

    def next_after(self, moment: dt.datetime, started: dt.datetime | None = None) -> dt.datetime:
        """The first fire time strictly after `moment`; the first fire is one period after `started`."""
        origin = started if started is not None else moment
        periods = max(0, (moment - origin) // self.period) + 1
        return origin + periods * self.period


Schedule = CronSchedule | RateSchedule

_RATE_SHAPE = re.compile(r"^rate\(\s*(\S+)\s+(\S+)\s*\)$")
_CRON_SHAPE = re.compile(r"^cron\((.*)\)$")


def parse_rate(expression: str) -> RateSchedule:
    """`rate(value unit)`: a positive whole value; the unit singular for 1, plural otherwise."""
    shape = _RATE_SHAPE.match(expression.strip())
    if not shape:
        raise ScheduleError(f"{expression}: expected rate(value unit), e.g. rate(5 minutes)")
    value_text, unit = shape.groups()
    if not value_text.isdigit() or int(value_text) < 1:
        raise ScheduleError(f"{expression}: the value must be a positive whole number, not {value_text!r}")
    value = int(value_text)
    singular = unit.removesuffix("s")
    if singular not in RATE_UNITS:
        raise ScheduleError(f"{expression}: unknown unit {unit!r} (minute(s), hour(s), day(s))")
    wanted = singular if value == 1 else f"{singular}s"
    if unit != wanted:
        raise ScheduleError(f"{expression}: a value of {value} takes the unit {wanted!r}, not {unit!r}")
    return RateSchedule(expression, value * RATE_UNITS[singular])


def parse_cron(expression: str) -> CronSchedule:
    """`cron(minutes hours day-of-month month day-of-week year)` in AWS's dialect."""
    shape = _CRON_SHAPE.match(expression.strip())
    if not shape:
        raise ScheduleError(f"{expression}: expected cron(minutes hours day-of-month month day-of-week year)")
    fields = shape.group(1).upper().split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{expression}: cron() takes 6 fields (minutes hours day-of-month month day-of-week year), "
            f"not {len(fields)}"
        )
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        which = "both '?'" if dom == "?" else f"both set ({dom!r} and {dow!r})"
        raise ScheduleError(f"{expression}: day-of-month and day-of-week are {which}; exactly one must be '?'")
    if "?" in (minutes, hours, month, year):
        raise ScheduleError(f"{expression}: '?' is allowed only in day-of-month or day-of-week")
    try:
        days = _day_of_week(dow) if dom == "?" else _day_of_month(dom)
        return CronSchedule(
            expression=expression,
            minutes=MINUTES.values(minutes),
            hours=HOURS.values(hours),
            days=days,
            months=MONTH.values(month),
            years=YEAR.values(year),
        )
    except ScheduleError as error:
        raise ScheduleError(f"{expression}: {error}") from None


def parse_schedule(expression: str) -> Schedule:
    """A `rate(...)` or `cron(...)` expression, parsed; ScheduleError says what EventBridge would refuse."""
    text = expression.strip()
    if text.startswith("rate("):
        return parse_rate(text)
    if text.startswith("cron("):
        return parse_cron(text)
    raise ScheduleError(f"{expression!r}: expected rate(...) or cron(...)")


def check_fires(schedule: Schedule, now: dt.datetime) -> dt.datetime:
    """The schedule's next fire time after `now`; ScheduleError if it never fires again."""
    upcoming = schedule.next_after(now, now)
    if upcoming is None:
        raise ScheduleError(f"{schedule.expression}: never fires after {now:%Y-%m-%dT%H:%MZ}")
    return upcoming
