"""What the schedule pages show, built from rows and the pure core: who is on call, a
day-by-day view of the next two weeks with the gaps, layers and restrictions in words, and
overrides (escalation policies are in policy_views.py).

No I/O beyond the session handed in; the router (oncall.py) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.durations import format_duration
from tocsin.core.oncall import schedule as core
from tocsin.core.oncall.ical import parse_calendar
from tocsin.core.oncall.rotation import local_to_utc, zone_info
from tocsin.services import oncall_queries as q
from tocsin.services import schedules
from tocsin.storage.oncall_tables import ScheduleLayerRow, ScheduleOverrideRow, ScheduleRow

DAYS_AHEAD = 14
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_ROTATION_UNITS = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}


def _person(found: dict[str, q.Person], user_id: str) -> q.Person:
    return q.person_of(found, user_id)


# --- schedules ---


@dataclass(frozen=True, slots=True)
class ScheduleSummary:
    """A schedule on the list: who is on call now, and when and to whom it next changes."""

    id: str
    name: str
    time_zone: str
    on_call: list[q.Person]
    next_change: datetime | None
    next_on_call: list[q.Person]
    problem: str = ""


def _built(session: Session, rows: Sequence[ScheduleRow], now: datetime) -> dict[str, Any]:
    """Return each schedule built by the core, or the reason it cannot be (a bad calendar…)."""
    try:
        return dict(schedules.load_many(session, rows, since=now))
    except ValueError:
        pass
    out: dict[str, Any] = {}
    for row in rows:
        try:
            out[row.id] = schedules.load_many(session, [row], since=now)[row.id]
        except ValueError as exc:
            out[row.id] = str(exc)
    return out


def schedule_summaries(session: Session, now: datetime) -> list[ScheduleSummary]:
    """Return every live schedule with who is on call now and the next handoff."""
    rows = schedules.live_schedules(session)
    built = _built(session, rows, now)
    found: list[tuple[ScheduleRow, tuple[str, ...], datetime | None, tuple[str, ...], str]] = []
    for row in rows:
        schedule = built[row.id]
        if isinstance(schedule, str):
            found.append((row, (), None, (), schedule))
            continue
        current = core.on_call_at(schedule, now)
        change = core.next_change(schedule, now)
        after = core.on_call_at(schedule, change) if change is not None else ()
        found.append((row, current, change, after, ""))
    names = q.people(session, {u for item in found for u in (*item[1], *item[3])})
    return [
        ScheduleSummary(
            id=row.id,
            name=row.name or row.id,
            time_zone=row.time_zone,
            on_call=[_person(names, u) for u in current],
            next_change=change,
            next_on_call=[_person(names, u) for u in after],
            problem=problem,
        )
        for row, current, change, after, problem in found
    ]


@dataclass(frozen=True, slots=True)
class DayEntry:
    """One person's shift within a day, or a gap, with local clock times."""

    person: q.Person | None
    begins: str
    ends: str
    starts_at: datetime
    ends_at: datetime
    current: bool
    past: bool

    @property
    def gap(self) -> bool:
        return self.person is None

    @property
    def span(self) -> str:
        """Return '09:00–24:00', or 'all day'."""
        if self.begins == "00:00" and self.ends == "24:00":
            return "all day"
        return f"{self.begins}–{self.ends}"


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    entries: list[DayEntry]

    @property
    def label(self) -> str:
        return f"{_WEEKDAYS[self.day.weekday()]} {self.day.day} {self.day.strftime('%b')}"

    @property
    def has_gap(self) -> bool:
        return any(e.gap for e in self.entries)


def _clock(value: datetime, zone_name: str) -> str:
    return value.astimezone(zone_info(zone_name)).strftime("%H:%M")


def days_ahead(
    session: Session, schedule: core.Schedule, now: datetime, days: int = DAYS_AHEAD
) -> list[Day]:
    """Return the final shifts and gaps of today and the next days, split at local midnight."""
    zone = zone_info(schedule.time_zone)
    today = now.astimezone(zone).date()
    dates = [today + timedelta(days=i) for i in range(days + 1)]
    bounds = [local_to_utc(d, time(0), zone) for d in dates]
    slots = q.slots(schedule, bounds[0], bounds[-1])
    names = q.people(session, {s.user for s in slots if s.user})
    out: list[Day] = []
    for index, day in enumerate(dates[:-1]):
        begins, ends = bounds[index], bounds[index + 1]
        entries = []
        for slot in slots:
            if slot.ends_at <= begins or slot.starts_at >= ends:
                continue
            start, end = max(slot.starts_at, begins), min(slot.ends_at, ends)
            entries.append(
                DayEntry(
                    person=_person(names, slot.user) if slot.user else None,
                    begins="00:00" if start == begins else _clock(start, schedule.time_zone),
                    ends="24:00" if end == ends else _clock(end, schedule.time_zone),
                    starts_at=start,
                    ends_at=end,
                    current=start <= now < end,
                    past=slot.ends_at <= now,
                )
            )
        out.append(Day(day, entries))
    return out


@dataclass(frozen=True, slots=True)
class LayerView:
    """A layer as configured, in words."""

    position: int
    name: str
    kind: str
    details: list[str]
    users: list[q.Person]
    restrictions: list[str]
    unmatched: list[str] = field(default_factory=list)


def restriction_text(spec: dict[str, Any]) -> str:
    """Return 'Mon–Fri 08:00–18:00' for a restriction as written in the config."""
    try:
        parsed = core.parse_restriction(spec)
    except (ValueError, TypeError):
        return str(spec)
    days = sorted(parsed.days)
    if days == list(range(7)):
        when = "Every day"
    elif days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        when = f"{_WEEKDAYS[days[0]]}–{_WEEKDAYS[days[-1]]}"
    else:
        when = ", ".join(_WEEKDAYS[d] for d in days)
    if parsed.start == parsed.end:
        return f"{when}, all day from {parsed.start:%H:%M}"
    end = "24:00" if parsed.end == time(0) else f"{parsed.end:%H:%M}"
    overnight = " (overnight)" if time(0) < parsed.end < parsed.start else ""
    return f"{when} {parsed.start:%H:%M}–{end}{overnight}"


def _rotation_details(spec: dict[str, Any]) -> tuple[str, list[str]]:
    try:
        rotation = core.parse_rotation(spec)
    except (ValueError, TypeError) as exc:
        return "rotation", [f"cannot be read: {exc}"]
    details = [f"handoff {rotation.handoff}"]
    if rotation.type == "custom" and rotation.length is not None:
        details.append(f"shifts of {format_duration(rotation.length * rotation.every)}")
    elif rotation.every > 1:
        details.append(f"every {rotation.every} {_ROTATION_UNITS[rotation.type]}s")
    details.append(f"since {rotation.start.isoformat()}")
    return f"{rotation.type} rotation", details


def layer_views(
    session: Session, rows: Sequence[ScheduleLayerRow], time_zone: str
) -> list[LayerView]:
    """Return the layers of a schedule as configured (later layers win)."""
    resolver = None
    views: list[tuple[ScheduleLayerRow, str, list[str], list[str], list[str]]] = []
    for row in rows:
        users, unmatched = list(row.users or []), []
        if row.calendar:
            resolver = resolver or schedules.user_resolver(session)
            kind, details = "imported calendar", []
            try:
                parsed = parse_calendar(row.calendar, resolver, default_zone=time_zone)
                users = sorted({user for _, user in parsed.users})
                unmatched = list(parsed.unresolved)
            except ValueError as exc:
                details = [f"cannot be read: {exc}"]
        elif row.rotation:
            kind, details = _rotation_details(row.rotation)
        else:
            kind, details = "everyone at once", []
        views.append((row, kind, details, users, unmatched))
    names = q.people(session, {u for item in views for u in item[3]})
    return [
        LayerView(
            position=row.position,
            name=row.name or f"Layer {i + 1}",
            kind=kind,
            details=details,
            users=[_person(names, u) for u in users],
            restrictions=[restriction_text(r) for r in row.restrict or []],
            unmatched=unmatched,
        )
        for i, (row, kind, details, users, unmatched) in enumerate(views)
    ]


@dataclass(frozen=True, slots=True)
class OverrideView:
    id: int
    kind: str
    person: q.Person
    replaces: q.Person | None
    starts_at: datetime
    ends_at: datetime
    note: str
    created_by: str
    active: bool

    @property
    def summary(self) -> str:
        """Return what the override does, in words."""
        if self.kind == "add":
            return f"{self.person.name} also on call"
        if self.kind == "remove":
            return f"{self.person.name} off call"
        if self.replaces is not None:
            return f"{self.person.name} covers for {self.replaces.name}"
        return f"{self.person.name} alone on call"


def override_views(
    rows: Sequence[ScheduleOverrideRow], session: Session, now: datetime
) -> list[OverrideView]:
    """Return overrides for display, with people's names."""
    ids = {r.user_id for r in rows} | {r.replaces_user_id for r in rows if r.replaces_user_id}
    names = q.people(session, ids)
    return [
        OverrideView(
            id=r.id,
            kind=r.kind,
            person=_person(names, r.user_id),
            replaces=_person(names, r.replaces_user_id) if r.replaces_user_id else None,
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            note=r.note,
            created_by=r.created_by,
            active=r.starts_at <= now < r.ends_at,
        )
        for r in rows
    ]


def local_input(value: datetime, time_zone: str) -> str:
    """Return an instant as a datetime-local value in a zone ('2026-03-14T10:26')."""
    return value.astimezone(zone_info(time_zone)).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class SchedulePage:
    """Everything /schedules/{id} shows."""

    row: ScheduleRow
    on_call: list[q.Person]
    next_change: datetime | None
    next_on_call: list[q.Person]
    days: list[Day]
    layers: list[LayerView]
    overrides: list[OverrideView]
    problem: str = ""

    @property
    def gap_days(self) -> int:
        return sum(1 for d in self.days if d.has_gap)


def schedule_page(session: Session, schedule_id: str, now: datetime) -> SchedulePage:
    """Return a schedule's page: who is on call, the next two weeks, layers and overrides."""
    row = q.schedule_row(session, schedule_id)
    layer_rows = list(
        session.scalars(
            select(ScheduleLayerRow)
            .where(ScheduleLayerRow.schedule_id == schedule_id)
            .order_by(ScheduleLayerRow.position)
        )
    )
    layers = layer_views(session, layer_rows, row.time_zone)
    overrides = override_views(q.overrides(session, schedule_id, now), session, now)
    built = _built(session, [row], now)[row.id]
    if isinstance(built, str):
        return SchedulePage(row, [], None, [], [], layers, overrides, problem=built)
    current = core.on_call_at(built, now)
    change = core.next_change(built, now)
    after = core.on_call_at(built, change) if change is not None else ()
    names = q.people(session, {*current, *after})
    return SchedulePage(
        row=row,
        on_call=[_person(names, u) for u in current],
        next_change=change,
        next_on_call=[_person(names, u) for u in after],
        days=days_ahead(session, built, now),
        layers=layers,
        overrides=overrides,
    )
