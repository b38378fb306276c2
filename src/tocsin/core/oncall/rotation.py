"""Rotations: when shift k of a rotation starts, and which shift holds an instant.

Shift k (k = 0, 1, 2, …) starts at handoff k and ends at handoff k + 1; the layer gives it to
``users[k % len(users)]``. Handoff 0 is the first handoff at or after the rotation's ``start``
date; before it the rotation has nobody on call.

Handoff formats, by rotation type:

- ``hourly``  ``":MM"`` (``"HH:MM"`` is accepted, only its minutes count): handoff 0 is ``start``
  at 00:MM local, then every ``every`` hours of elapsed time (3600 s each).
- ``daily``   ``"HH:MM"``: at HH:MM local every ``every`` days.
- ``weekly``  ``"<weekday> HH:MM"`` (``monday`` or ``mon``, any case): handoff 0 is the first
  such weekday at or after ``start``, then every ``every`` weeks.
- ``monthly`` ``"<1-28|last> HH:MM"``: handoff 0 is the first such day at or after ``start``,
  then every ``every`` months (``last`` is the last day of each month).
- ``custom``  ``"HH:MM"``: handoff 0 is ``start`` at HH:MM local, then every ``every * length``
  of elapsed time.

Daily, weekly and monthly handoffs are wall-clock times in the schedule's zone, so a daily shift
across a DST change lasts 23 or 25 hours. A handoff at a local time that does not exist that day
(02:30 on a spring-forward day) happens as far after the gap's start as the time was meant to be,
02:30 → 03:30 local; an ambiguous local time (fall back) is its first occurrence. That is what
zoneinfo gives for ``fold=0`` normalised through UTC.

Index arithmetic is O(1): the shift holding an instant is estimated from the elapsed days or
months and corrected by at most a step or two, never found by walking shifts from ``start``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tocsin.core.durations import parse_duration

RotationType = Literal["hourly", "daily", "weekly", "monthly", "custom"]
ROTATION_TYPES: tuple[str, ...] = get_args(RotationType)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_HOUR = timedelta(hours=1)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_HANDOFF_FORMS = {
    "hourly": "':MM' (e.g. ':30')",
    "daily": "'HH:MM' (e.g. '09:00')",
    "weekly": "'<weekday> HH:MM' (e.g. 'monday 09:00')",
    "monthly": "'<1-28|last> HH:MM' (e.g. '1 09:00' or 'last 18:00')",
    "custom": "'HH:MM' (e.g. '08:00')",
}


@dataclass(frozen=True, slots=True)
class Shift:
    """One user on call from ``starts_at`` (inclusive) to ``ends_at`` (exclusive), in UTC."""

    user: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Rotation:
    """How a layer's users take turns: the period, the handoff time and the first day."""

    type: RotationType
    handoff: str
    start: date
    length: timedelta | None = None
    every: int = 1

    def __post_init__(self) -> None:
        if self.type not in ROTATION_TYPES:
            raise ValueError(
                f"rotation type {self.type!r} is unknown: use one of {', '.join(ROTATION_TYPES)}"
            )
        if isinstance(self.start, datetime) or not isinstance(self.start, date):
            raise ValueError(f"rotation start must be a date (YYYY-MM-DD), not {self.start!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"rotation every must be a whole number >= 1, not {self.every!r}")
        if self.type == "custom":
            if self.length is None or self.length <= timedelta(0):
                raise ValueError("a custom rotation needs a positive length (e.g. 12h)")
        elif self.length is not None:
            raise ValueError(f"length is only for custom rotations, not {self.type}")
        if not isinstance(self.handoff, str):
            raise ValueError(f"rotation handoff must be text, not {self.handoff!r}")
        parse_handoff(self.type, self.handoff)


@dataclass(frozen=True, slots=True)
class Handoff:
    """A parsed handoff: local time of day, plus the weekday or day of month where relevant."""

    at: time
    weekday: int = 0  # weekly: 0 = Monday
    day: int = 0  # monthly: 1-28, or 0 for the last day of the month


def parse_clock(text: str, *, allow_24: bool = False) -> time:
    """Parse 'HH:MM' (24-hour); '24:00' means midnight when ``allow_24``."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid time {text!r}: use HH:MM, e.g. 09:00")
    hour, minute = int(match[1]), int(match[2])
    if allow_24 and (hour, minute) == (24, 0):
        return time(0, 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"invalid time {text!r}: hours 00-23, minutes 00-59")
    return time(hour, minute)


def weekday_number(name: str) -> int:
    """Map 'monday'/'Mon' … 'sunday'/'sun' to 0 … 6."""
    key = name.strip().lower()
    for number, full in enumerate(WEEKDAYS):
        if key in (full, full[:3]):
            return number
    raise ValueError(f"unknown weekday {name!r}: use monday … sunday or mon … sun")


@lru_cache(maxsize=4096)
def parse_handoff(type_: str, text: str) -> Handoff:
    """Parse a handoff for a rotation type; raise ValueError naming the accepted form."""
    form = _HANDOFF_FORMS.get(type_, "")
    try:
        if type_ == "hourly":
            cleaned = text.strip()
            clock = parse_clock("00" + cleaned if cleaned.startswith(":") else cleaned)
            return Handoff(at=time(0, clock.minute))
        if type_ in ("daily", "custom"):
            return Handoff(at=parse_clock(text))
        head, _, clock_text = text.strip().partition(" ")
        if type_ == "weekly":
            return Handoff(at=parse_clock(clock_text), weekday=weekday_number(head))
        if type_ == "monthly":
            if head.lower() == "last":
                return Handoff(at=parse_clock(clock_text), day=0)
            if not head.isdigit() or not 1 <= int(head) <= 28:
                raise ValueError("the day of month is 1-28 or 'last'")
            return Handoff(at=parse_clock(clock_text), day=int(head))
    except ValueError as error:
        raise ValueError(f"invalid {type_} handoff {text!r}: use {form} ({error})") from None
    raise ValueError(f"rotation type {type_!r} is unknown")


def parse_rotation(spec: Mapping[str, Any]) -> Rotation:
    """Build a Rotation from a config mapping {type, handoff, start, length?, every?}."""
    unknown = set(spec) - {"type", "handoff", "start", "length", "every"}
    if unknown:
        raise ValueError(
            f"rotation: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "expected type, handoff, start, length, every"
        )
    for key in ("type", "handoff", "start"):
        if key not in spec:
            raise ValueError(f"rotation: {key} is required (keys: type, handoff, start)")
    type_ = spec["type"]
    if not isinstance(type_, str) or type_.strip().lower() not in ROTATION_TYPES:
        raise ValueError(
            f"rotation type {type_!r} is unknown: use one of {', '.join(ROTATION_TYPES)}"
        )
    handoff = spec["handoff"]
    if isinstance(handoff, int) and not isinstance(handoff, bool):
        # YAML 1.1 reads an unquoted 17:00 as the sexagesimal number 1020 (minutes).
        handoff = f"{handoff // 60:02d}:{handoff % 60:02d}"
    if not isinstance(handoff, str):
        raise ValueError(f"rotation handoff must be text such as '09:00', not {handoff!r}")
    start = spec["start"]
    if isinstance(start, str):
        try:
            start = date.fromisoformat(start.strip())
        except ValueError:
            raise ValueError(f"rotation start {start!r} is not a date (YYYY-MM-DD)") from None
    length = spec.get("length")
    if isinstance(length, str):
        length = parse_duration(length)
    elif length is not None and not isinstance(length, timedelta):
        raise ValueError(f"rotation length {length!r} is not a duration (e.g. 12h, 2d)")
    return Rotation(
        type=cast(RotationType, type_.strip().lower()),
        handoff=handoff,
        start=start,
        length=length,
        every=spec.get("every", 1),
    )


def zone_info(name: str) -> ZoneInfo:
    """Look up an IANA time zone; raise ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin"
        ) from None


def as_utc(instant: datetime) -> datetime:
    """Return an aware instant in UTC; refuse naive datetimes."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant {instant.isoformat()} has no time zone")
    return instant.astimezone(UTC)


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (fold=0: gaps shift forward, repeats first)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _month_day(month_index: int, day: int) -> date:
    year, month0 = divmod(month_index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, day or last)


def _first_day(rotation: Rotation, handoff: Handoff) -> date:
    """The local date of handoff 0 (daily, weekly, monthly)."""
    start = rotation.start
    if rotation.type == "weekly":
        return start + timedelta(days=(handoff.weekday - start.weekday()) % 7)
    if rotation.type == "monthly":
        month_index = start.year * 12 + start.month - 1
        if _month_day(month_index, handoff.day) < start:
            month_index += 1
        return _month_day(month_index, handoff.day)
    return start


def _period(rotation: Rotation) -> timedelta:
    """Elapsed length of one shift for hourly and custom rotations."""
    if rotation.type == "hourly":
        return _HOUR * rotation.every
    assert rotation.length is not None  # checked in Rotation.__post_init__
    return rotation.length * rotation.every


def handoff_at(rotation: Rotation, zone: ZoneInfo, k: int) -> datetime:
    """The UTC instant shift ``k`` starts (k may be any integer >= 0)."""
    handoff = parse_handoff(rotation.type, rotation.handoff)
    if rotation.type in ("hourly", "custom"):
        return local_to_utc(rotation.start, handoff.at, zone) + _period(rotation) * k
    first = _first_day(rotation, handoff)
    if rotation.type == "daily":
        day = first + timedelta(days=k * rotation.every)
    elif rotation.type == "weekly":
        day = first + timedelta(days=7 * k * rotation.every)
    else:
        first_month = first.year * 12 + first.month - 1
        day = _month_day(first_month + k * rotation.every, handoff.day)
    return local_to_utc(day, handoff.at, zone)


def _estimate(rotation: Rotation, zone: ZoneInfo, instant: datetime) -> int:
    handoff = parse_handoff(rotation.type, rotation.handoff)
    if rotation.type in ("hourly", "custom"):
        return (instant - local_to_utc(rotation.start, handoff.at, zone)) // _period(rotation)
    first = _first_day(rotation, handoff)
    local_day = instant.astimezone(zone).date()
    if rotation.type == "daily":
        return (local_day - first).days // rotation.every
    if rotation.type == "weekly":
        return (local_day - first).days // (7 * rotation.every)
    months = (local_day.year - first.year) * 12 + local_day.month - first.month
    return months // rotation.every


def shift_index_at(rotation: Rotation, zone: ZoneInfo, instant: datetime) -> int:
    """The index of the shift holding ``instant``; -1 before the first handoff."""
    k = max(_estimate(rotation, zone, instant), 0)
    # The estimate is off by at most a step (DST offsets, month lengths); correct it exactly.
    while k >= 0 and handoff_at(rotation, zone, k) > instant:
        k -= 1
    if k < 0:
        return -1
    while handoff_at(rotation, zone, k + 1) <= instant:
        k += 1
    return k


def rotation_shifts(
    rotation: Rotation, users: tuple[str, ...], zone: ZoneInfo, start: datetime, end: datetime
) -> list[Shift]:
    """The rotation's shifts clipped to [start, end); consecutive shifts of one user merged."""
    if not users or start >= end:
        return []
    out: list[Shift] = []
    k = max(shift_index_at(rotation, zone, start), 0)
    begins = handoff_at(rotation, zone, k)
    while begins < end:
        ends = handoff_at(rotation, zone, k + 1)
        piece_start, piece_end = max(begins, start), min(ends, end)
        if piece_start < piece_end:
            user = users[k % len(users)]
            if out and out[-1].user == user and out[-1].ends_at == piece_start:
                out[-1] = Shift(user, out[-1].starts_at, piece_end)
            else:
                out.append(Shift(user, piece_start, piece_end))
        k, begins = k + 1, ends
    return out
