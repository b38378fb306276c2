"""Import an iCalendar file as a schedule's calendar layer (and take it out again)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import icalendar
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tocsin.core.errors import InvalidInput, NotFound
from tocsin.core.oncall.ical import parse_calendar
from tocsin.services import schedules
from tocsin.storage.oncall_tables import IMPORTED_CALENDAR, ScheduleLayerRow, ScheduleRow

# Occurrences a day one recurrence may produce (every 15 minutes), and dated entries in all.
MAX_PER_DAY = 96
MAX_DATED = 20_000
_PER_DAY = {
    "SECONDLY": 86400.0,
    "MINUTELY": 1440.0,
    "HOURLY": 24.0,
    "DAILY": 1.0,
    "WEEKLY": 1 / 7,
    "MONTHLY": 1 / 30,
    "YEARLY": 1 / 365,
}
_RANK = {
    "SECONDLY": 0,
    "MINUTELY": 1,
    "HOURLY": 2,
    "DAILY": 3,
    "WEEKLY": 4,
    "MONTHLY": 5,
    "YEARLY": 6,
}


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import found: events, the people it matched and the names it could not."""

    schedule_id: str
    events: int
    users: tuple[tuple[str, str], ...]  # (name or email in the calendar, user id)
    unmatched: tuple[str, ...]
    position: int
    replaced: bool


def import_calendar(session: Session, schedule_id: str, text: str | bytes) -> Imported:
    """Make `text` the schedule's calendar layer, on top of its rotation layers.

    An earlier calendar layer is replaced; rotation layers stay and fill the calendar's gaps
    (later layers win where both have somebody).
    """
    row = _schedule(session, schedule_id)
    try:
        layer = parse_calendar(text, schedules.user_resolver(session), default_zone=row.time_zone)
    except ValueError as error:
        raise InvalidInput(str(error), field="calendar") from None
    found = icalendar.Calendar.from_ical(layer.text).walk("VEVENT")
    if not found:
        raise InvalidInput("the calendar has no events (VEVENT)", field="calendar")
    check_density(found)
    replaced = _remove_calendar_layers(session, schedule_id)
    top = session.scalar(
        select(func.max(ScheduleLayerRow.position)).where(
            ScheduleLayerRow.schedule_id == schedule_id
        )
    )
    position = 0 if top is None else top + 1
    session.add(
        ScheduleLayerRow(
            schedule_id=schedule_id,
            position=position,
            name=IMPORTED_CALENDAR,
            rotation=None,
            users=[],
            restrict=[],
            calendar=layer.text,
        )
    )
    session.flush()
    return Imported(schedule_id, len(found), layer.users, layer.unresolved, position, replaced)


def check_density(events: Sequence[Any]) -> None:
    """Refuse calendars whose occurrences would swamp every on-call question.

    Who is on call is computed from the calendar on every page and every feed; an event
    repeating every minute means hundreds of thousands of shifts. Real on-call calendars change
    hands a few times a day at most, so the limits are generous.
    """
    dated = sum(1 + _count_dates(event.get("RDATE")) for event in events)
    if dated > MAX_DATED:
        raise InvalidInput(
            f"the calendar has {dated} events and extra dates; at most {MAX_DATED} are allowed",
            field="calendar",
        )
    for event in events:
        rules = event.get("RRULE")
        for rule in rules if isinstance(rules, list) else [rules] if rules else []:
            per_day = _per_day(rule)
            if per_day > MAX_PER_DAY:
                label = str(event.get("SUMMARY") or event.get("UID") or "an event")
                raise InvalidInput(
                    f"calendar event {label!r} repeats about {round(per_day)} times a day; "
                    f"on-call calendars may repeat at most {MAX_PER_DAY} times a day",
                    field="calendar",
                )


def _count_dates(value: Any) -> int:
    items = value if isinstance(value, list) else [value] if value is not None else []
    return sum(len(getattr(item, "dts", ())) or 1 for item in items)


def _per_day(rule: Any) -> float:
    """Estimate how many times a day an RRULE fires (BY parts finer than FREQ multiply)."""
    freq = str((rule.get("FREQ") or ["DAILY"])[0]).upper()
    try:
        interval = max(1, int((rule.get("INTERVAL") or [1])[0]))
    except (TypeError, ValueError):
        interval = 1
    per_day = _PER_DAY.get(freq, 1.0) / interval
    rank = _RANK.get(freq, 3)
    for part, part_rank in (("BYSECOND", 0), ("BYMINUTE", 1), ("BYHOUR", 2)):
        if rank > part_rank and rule.get(part):
            per_day *= len(rule[part])
    if rank > 3 and rule.get("BYDAY"):
        per_day *= len(rule["BYDAY"]) * (1 if freq == "WEEKLY" else 4.3)
    return per_day


def remove_calendar(session: Session, schedule_id: str) -> bool:
    """Drop the schedule's calendar layer; return whether it had one."""
    _schedule(session, schedule_id)
    return _remove_calendar_layers(session, schedule_id)


def _schedule(session: Session, schedule_id: str) -> ScheduleRow:
    row = session.get(ScheduleRow, schedule_id, with_for_update=True)
    if row is None or row.archived:
        raise NotFound(f"schedule {schedule_id!r} not found")
    return row


def _remove_calendar_layers(session: Session, schedule_id: str) -> bool:
    result = session.execute(
        delete(ScheduleLayerRow).where(
            ScheduleLayerRow.schedule_id == schedule_id, ScheduleLayerRow.calendar.is_not(None)
        )
    )
    session.flush()
    return bool(getattr(result, "rowcount", 0))
