"""iCalendar (RFC 5545): export shifts as a feed, import a calendar as a schedule layer.

Export: one VEVENT per shift, in UTC, with a UID that stays the same for the same user and start
(so a subscribed calendar updates instead of duplicating), SUMMARY "On call: <name>", TRANSP
TRANSPARENT (being on call does not make anybody busy). DTSTAMP is the shift's start unless the
caller passes ``dtstamp``: the core reads no clock, and a stable DTSTAMP keeps the feed
byte-identical while the shifts are.

Import: every VEVENT, recurring or not, is an on-call period for the user it names. The user is
the first of these that ``resolve_user`` maps to a user id: the event's ATTENDEE mailto addresses
in order, then its SUMMARY without a leading "On call:". Events naming nobody are ignored (their
names are kept in ``CalendarLayer.unresolved`` for the UI). Recurrence (RRULE, RDATE, EXDATE,
RECURRENCE-ID exceptions) is expanded by ``recurring_ical_events``; STATUS:CANCELLED occurrences
are dropped. Floating times and all-day (DATE) events are wall-clock times in the calendar's own
zone (X-WR-TIMEZONE) when it names one, else in ``default_zone`` (pass the schedule's zone); an
all-day event covers whole local days from midnight to midnight. Users are resolved once, at
parse time; the parsed calendar is cached by its text, so a CalendarLayer stays small and
hashable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from tocsin.core.oncall.rotation import Shift, as_utc, local_to_utc, zone_info

__all__ = ["CalendarLayer", "calendar_shifts", "export_calendar", "parse_calendar"]

_NO_NAMES: Mapping[str, str] = MappingProxyType({})
# What a malformed calendar makes icalendar and recurring_ical_events raise (their own errors
# are ValueErrors; the rest come from lookups in half-parsed components).
_BROKEN = (ValueError, KeyError, IndexError, TypeError, AttributeError)
_SUMMARY_PREFIX = "on call:"
# Floating and all-day events are compared by the library in the query's zone; a day either
# side keeps every occurrence that could touch the window after our own conversion to UTC.
_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class CalendarLayer:
    """An imported calendar: its text, the zone for floating times, and resolved user names."""

    text: str
    zone: str = "UTC"
    users: tuple[tuple[str, str], ...] = ()  # (email or name in the calendar, user id)
    unresolved: tuple[str, ...] = ()  # names of events that matched no user


def export_calendar(
    name: str,
    shifts: Sequence[Shift],
    *,
    user_names: Mapping[str, str] = _NO_NAMES,
    prodid: str = "-//Tocsin//On-call//EN",
    uid_suffix: str = "tocsin",
    dtstamp: datetime | None = None,
) -> bytes:
    """Render shifts as an iCalendar feed, one event per shift."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", prodid)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    for shift in shifts:
        starts_at, ends_at = as_utc(shift.starts_at), as_utc(shift.ends_at)
        event = icalendar.Event()
        event.add("uid", f"{shift.user}-{starts_at:%Y%m%dT%H%M%SZ}@{uid_suffix}")
        event.add("dtstamp", as_utc(dtstamp) if dtstamp is not None else starts_at)
        event.add("dtstart", starts_at)
        event.add("dtend", ends_at)
        event.add("summary", f"On call: {user_names.get(shift.user, shift.user)}")
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    return bytes(calendar.to_ical())


@lru_cache(maxsize=64)
def _query(text: str) -> Any:
    """Parse a calendar once per distinct text (the engine asks on every page)."""
    return recurring_ical_events.of(icalendar.Calendar.from_ical(text))


def _event_label(event: icalendar.Component) -> str:
    return str(event.get("SUMMARY") or event.get("UID") or "an event")


def _candidates(event: icalendar.Component) -> list[str]:
    """The names an event may mean a user by, in the order they are tried."""
    found: list[str] = []
    attendees = event.get("ATTENDEE")
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        value = str(attendee or "").strip()
        if value.lower().startswith("mailto:") and value[7:].strip():
            found.append(value[7:].strip())
    summary = str(event.get("SUMMARY") or "").strip()
    if summary.lower().startswith(_SUMMARY_PREFIX):
        summary = summary[len(_SUMMARY_PREFIX) :].strip()
    if summary:
        found.append(summary)
    return found


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValueError(f"calendar is not UTF-8 text: {error}") from None
    return text.lstrip("\ufeff")


def _check_events(events: Iterable[icalendar.Component]) -> None:
    for event in events:
        label = _event_label(event)
        for prop, message in getattr(event, "errors", ()):
            raise ValueError(f"calendar event {label!r}: invalid {prop}: {message}")
        if "DTSTART" not in event:
            raise ValueError(f"calendar event {label!r} has no DTSTART")


def parse_calendar(
    text: str | bytes,
    resolve_user: Callable[[str], str | None],
    *,
    default_zone: str = "UTC",
) -> CalendarLayer:
    """Parse and check an iCalendar text, resolving the users its events name."""
    text = _decode(text)
    zone_info(default_zone)
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except _BROKEN as error:
        raise ValueError(f"not an iCalendar file: {error}") from None
    if calendar.name != "VCALENDAR":
        raise ValueError(f"not an iCalendar file: expected VCALENDAR, found {calendar.name}")
    events = calendar.walk("VEVENT")
    _check_events(events)
    zone = default_zone
    declared = str(calendar.get("X-WR-TIMEZONE") or "").strip()
    if declared:
        zone = zone_info(declared).key
    try:
        # Building the query expands nothing yet but reads every rule: bad ones fail here.
        list(_query(text).between(datetime(2000, 1, 1, tzinfo=UTC), timedelta(days=1)))
    except _BROKEN as error:
        raise ValueError(f"calendar cannot be expanded: {error}") from None
    users: dict[str, str] = {}
    unresolved: list[str] = []
    for event in events:
        candidates = _candidates(event)
        for candidate in candidates:
            if candidate in users:
                break
            user = resolve_user(candidate)
            if user is not None:
                users[candidate] = user
                break
        else:
            label = " / ".join(candidates) or _event_label(event)
            if label not in unresolved:
                unresolved.append(label)
    return CalendarLayer(
        text=text, zone=zone, users=tuple(users.items()), unresolved=tuple(unresolved)
    )


@lru_cache(maxsize=256)
def _user_map(users: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(users)


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=zone).astimezone(UTC)
        return value.astimezone(UTC)
    return local_to_utc(value, time(0), zone)


def _span(event: icalendar.Component, zone: ZoneInfo) -> tuple[datetime, datetime]:
    properties: Any = event
    start_value: date | datetime = properties["DTSTART"].dt
    end_value: date | datetime
    if "DTEND" in event:
        end_value = properties["DTEND"].dt
    elif "DURATION" in event:
        end_value = start_value + properties["DURATION"].dt
    elif isinstance(start_value, datetime):
        end_value = start_value
    else:
        end_value = start_value + timedelta(days=1)
    return _instant(start_value, zone), _instant(end_value, zone)


def calendar_shifts(layer: CalendarLayer, start: datetime, end: datetime) -> list[Shift]:
    """Return the calendar's on-call periods in [start, end), per user merged, clipped."""
    start, end = as_utc(start), as_utc(end)
    if start >= end:
        return []
    zone = zone_info(layer.zone)
    users = _user_map(layer.users)
    by_user: dict[str, list[tuple[datetime, datetime]]] = {}
    query_start, query_end = (start - _MARGIN).astimezone(zone), (end + _MARGIN).astimezone(zone)
    try:
        occurrences = list(_query(layer.text).between(query_start, query_end))
    except _BROKEN as error:
        raise ValueError(f"calendar cannot be expanded: {error}") from None
    for event in occurrences:
        if str(event.get("STATUS") or "").upper() == "CANCELLED":
            continue
        user = next((users[c] for c in _candidates(event) if c in users), None)
        if user is None:
            continue
        begins, ends = _span(event, zone)
        begins, ends = max(begins, start), min(ends, end)
        if begins < ends:
            by_user.setdefault(user, []).append((begins, ends))
    out: list[Shift] = []
    for user, spans in by_user.items():
        spans.sort()
        merged = [spans[0]]
        for begins, ends in spans[1:]:
            if begins <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
            else:
                merged.append((begins, ends))
        out.extend(Shift(user, begins, ends) for begins, ends in merged)
    out.sort(key=lambda shift: (shift.starts_at, shift.user))
    return out
