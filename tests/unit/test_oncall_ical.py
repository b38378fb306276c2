"""iCalendar feeds: export shifts, import calendars as schedule layers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest

from tocsin.core.oncall.ical import (
    CalendarLayer,
    calendar_shifts,
    export_calendar,
    parse_calendar,
)
from tocsin.core.oncall.schedule import (
    Layer,
    Override,
    Schedule,
    Shift,
    gaps,
    layer_shifts,
    next_change,
    on_call_at,
    parse_restriction,
    parse_rotation,
    shifts,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


PRIMARY = Schedule(
    id="primary",
    time_zone="Europe/Berlin",
    layers=(
        Layer(
            users=("alice", "bob"),
            rotation=parse_rotation(
                {"type": "weekly", "handoff": "monday 09:00", "start": "2026-01-05"}
            ),
        ),
        Layer(
            users=("carol",),
            rotation=parse_rotation({"type": "daily", "handoff": "00:00", "start": "2026-01-05"}),
            restrictions=(parse_restriction({"days": "weekends", "from": "10:00", "to": "14:00"}),),
        ),
    ),
    overrides=(Override(utc(2026, 3, 30, 12), utc(2026, 3, 31, 6), "replace", "dave"),),
)
NAMES = {"alice": "Alice Liddell", "bob": "Bob", "carol": "Carol", "dave": "Dave"}
BY_NAME = {name: user for user, name in NAMES.items()}


def when(event: icalendar.Component, name: str) -> Any:
    """A date-time property's value (icalendar's own typing is a union of all value types)."""
    prop: Any = event[name]
    return prop.dt


def lines(*rows: str) -> str:
    return "\r\n".join(rows) + "\r\n"


# --- export ---


def test_export_is_a_valid_calendar() -> None:
    found = shifts(PRIMARY, utc(2026, 3, 20), utc(2026, 4, 10))
    feed = export_calendar("Primary on-call", found, user_names=NAMES)
    calendar = icalendar.Calendar.from_ical(feed)
    assert calendar["X-WR-CALNAME"] == "Primary on-call"
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"] == "-//Tocsin//On-call//EN"
    events = calendar.walk("VEVENT")
    assert len(events) == len(found)
    for event, shift in zip(events, found, strict=True):
        assert event.errors == []
        assert when(event, "DTSTART") == shift.starts_at
        assert when(event, "DTEND") == shift.ends_at
        assert when(event, "DTSTART").tzinfo is not None
        assert when(event, "DTSTART").utcoffset() == timedelta(0)
        assert event["SUMMARY"] == f"On call: {NAMES[shift.user]}"
        assert event["UID"] == f"{shift.user}-{shift.starts_at:%Y%m%dT%H%M%SZ}@tocsin"
        assert when(event, "DTSTAMP") == shift.starts_at
    # Times are written in UTC ("Z"), never with a TZID a client would have to know.
    text = feed.decode()
    assert "TZID" not in text
    assert "DTSTART:20260323T080000Z" in text
    assert len({event["UID"] for event in events}) == len(events)


def test_export_uids_are_stable_and_options_apply() -> None:
    week = shifts(PRIMARY, utc(2026, 3, 23), utc(2026, 3, 30, 7))
    longer = shifts(PRIMARY, utc(2026, 3, 23), utc(2026, 4, 20))
    uids = {
        e["UID"] for e in icalendar.Calendar.from_ical(export_calendar("x", week)).walk("VEVENT")
    }
    again = {
        e["UID"] for e in icalendar.Calendar.from_ical(export_calendar("x", longer)).walk("VEVENT")
    }
    assert uids <= again
    feed = export_calendar(
        "x",
        week,
        prodid="-//Acme//Pager//EN",
        uid_suffix="pager.example.com",
        dtstamp=datetime(2026, 3, 1, 12, tzinfo=BERLIN),
    )
    calendar = icalendar.Calendar.from_ical(feed)
    assert calendar["PRODID"] == "-//Acme//Pager//EN"
    event = calendar.walk("VEVENT")[0]
    assert str(event["UID"]).endswith("@pager.example.com")
    assert event["SUMMARY"] == "On call: alice"  # no display name given: the user id
    assert when(event, "DTSTAMP") == utc(2026, 3, 1, 11)
    assert export_calendar("x", week) == export_calendar("x", week)  # deterministic


def test_export_empty() -> None:
    calendar = icalendar.Calendar.from_ical(export_calendar("nobody", []))
    assert calendar.walk("VEVENT") == []


def test_round_trip_gives_the_same_shifts() -> None:
    window = (utc(2026, 3, 1), utc(2026, 5, 1))
    found = shifts(PRIMARY, *window)
    feed = export_calendar("Primary", found, user_names=NAMES)
    layer = parse_calendar(feed, BY_NAME.get, default_zone="Europe/Berlin")
    assert layer.unresolved == ()
    back = calendar_shifts(layer, *window)
    assert sorted(back, key=lambda s: (s.starts_at, s.user)) == sorted(
        found, key=lambda s: (s.starts_at, s.user)
    )
    # The imported calendar as a schedule layer behaves like the original schedule.
    imported = Schedule("copy", "Europe/Berlin", (Layer(users=(), calendar=layer),))
    assert shifts(imported, *window) == found
    probe = window[0]
    while probe < window[1]:
        assert on_call_at(imported, probe) == on_call_at(PRIMARY, probe)
        probe += timedelta(hours=7)
    assert next_change(imported, utc(2026, 3, 30, 8)) == utc(2026, 3, 30, 12)
    assert gaps(imported, *window) == gaps(PRIMARY, *window)


# --- import ---

IMPORT = lines(
    "BEGIN:VCALENDAR",
    "VERSION:2.0",
    "PRODID:-//Example//Other Pager//EN",
    # Alice's weekend shifts, Saturday 09:00 to Monday 09:00 Berlin time, six weeks.
    "BEGIN:VEVENT",
    "UID:weekend@example.com",
    "DTSTAMP:20260101T000000Z",
    "DTSTART;TZID=Europe/Berlin:20260314T090000",
    "DTEND;TZID=Europe/Berlin:20260316T090000",
    "RRULE:FREQ=WEEKLY;COUNT=6",
    "EXDATE;TZID=Europe/Berlin:20260321T090000",
    "SUMMARY:Weekend pager",
    "ATTENDEE;CN=Someone Else:mailto:stranger@example.com",
    "ATTENDEE;CN=Alice:mailto:alice@example.com",
    "END:VEVENT",
    # One weekend moved to Sunday noon and handed to Bob.
    "BEGIN:VEVENT",
    "UID:weekend@example.com",
    "DTSTAMP:20260101T000000Z",
    "RECURRENCE-ID;TZID=Europe/Berlin:20260404T090000",
    "DTSTART;TZID=Europe/Berlin:20260405T120000",
    "DTEND;TZID=Europe/Berlin:20260406T120000",
    "SUMMARY:Weekend pager",
    "ATTENDEE:mailto:bob@example.com",
    "END:VEVENT",
    # One weekend cancelled.
    "BEGIN:VEVENT",
    "UID:weekend@example.com",
    "DTSTAMP:20260101T000000Z",
    "RECURRENCE-ID;TZID=Europe/Berlin:20260411T090000",
    "DTSTART;TZID=Europe/Berlin:20260411T090000",
    "DTEND;TZID=Europe/Berlin:20260413T090000",
    "STATUS:CANCELLED",
    "SUMMARY:Weekend pager",
    "ATTENDEE:mailto:alice@example.com",
    "END:VEVENT",
    # Carol all day on Friday 20 March (local days of the default zone).
    "BEGIN:VEVENT",
    "UID:carol@example.com",
    "DTSTAMP:20260101T000000Z",
    "DTSTART;VALUE=DATE:20260320",
    "DTEND;VALUE=DATE:20260321",
    "SUMMARY:On call: Carol",
    "END:VEVENT",
    # Dave in floating time, with an extra date.
    "BEGIN:VEVENT",
    "UID:dave@example.com",
    "DTSTAMP:20260101T000000Z",
    "DTSTART:20260325T180000",
    "DURATION:PT2H",
    "RDATE:20260326T180000",
    "SUMMARY:Dave",
    "END:VEVENT",
    # Somebody Tocsin does not know, and a cancelled event.
    "BEGIN:VEVENT",
    "UID:mystery@example.com",
    "DTSTAMP:20260101T000000Z",
    "DTSTART:20260301T000000Z",
    "DTEND:20260302T000000Z",
    "SUMMARY:On call: Mystery Person",
    "END:VEVENT",
    "BEGIN:VEVENT",
    "UID:erin@example.com",
    "DTSTAMP:20260101T000000Z",
    "DTSTART:20260302T000000Z",
    "DTEND:20260303T000000Z",
    "STATUS:CANCELLED",
    "SUMMARY:Carol",
    "END:VEVENT",
    "END:VCALENDAR",
)
DIRECTORY = {
    "alice@example.com": "alice",
    "bob@example.com": "bob",
    "Carol": "carol",
    "Dave": "dave",
}


def test_import_recurrence_exceptions_dst_all_day_and_attendees() -> None:
    layer = parse_calendar(IMPORT, DIRECTORY.get, default_zone="Europe/Berlin")
    assert layer.unresolved == ("Mystery Person",)
    assert calendar_shifts(layer, utc(2026, 3, 1), utc(2026, 5, 1)) == [
        Shift("alice", utc(2026, 3, 14, 8), utc(2026, 3, 16, 8)),
        # 21 March is an EXDATE.
        Shift("carol", utc(2026, 3, 19, 23), utc(2026, 3, 20, 23)),
        Shift("dave", utc(2026, 3, 25, 17), utc(2026, 3, 25, 19)),
        Shift("dave", utc(2026, 3, 26, 17), utc(2026, 3, 26, 19)),
        # Across the spring change: 09:00 CET to 09:00 CEST is 47 hours.
        Shift("alice", utc(2026, 3, 28, 8), utc(2026, 3, 30, 7)),
        # 4 April moved to Sunday noon and given to Bob; 11 April cancelled.
        Shift("bob", utc(2026, 4, 5, 10), utc(2026, 4, 6, 10)),
        Shift("alice", utc(2026, 4, 18, 7), utc(2026, 4, 20, 7)),
    ]


def test_import_is_clipped_to_the_window() -> None:
    layer = parse_calendar(IMPORT, DIRECTORY.get, default_zone="Europe/Berlin")
    assert calendar_shifts(layer, utc(2026, 3, 15), utc(2026, 3, 15, 1)) == [
        Shift("alice", utc(2026, 3, 15), utc(2026, 3, 15, 1))
    ]
    assert calendar_shifts(layer, utc(2026, 3, 15), utc(2026, 3, 15)) == []


def test_all_day_and_floating_follow_the_given_zone() -> None:
    layer = parse_calendar(IMPORT, DIRECTORY.get, default_zone="America/Chicago")
    found = calendar_shifts(layer, utc(2026, 3, 19), utc(2026, 3, 27))
    assert Shift("carol", utc(2026, 3, 20, 5), utc(2026, 3, 21, 5)) in found
    assert Shift("dave", utc(2026, 3, 25, 23), utc(2026, 3, 26, 1)) in found


def test_calendar_time_zone_header_wins_for_all_day_events() -> None:
    text = lines(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//x//y//EN",
        "X-WR-TIMEZONE:Asia/Tokyo",
        "BEGIN:VEVENT",
        "UID:1",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;VALUE=DATE:20260320",
        "SUMMARY:Carol",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    layer = parse_calendar(text, DIRECTORY.get, default_zone="Europe/Berlin")
    assert layer.zone == "Asia/Tokyo"
    # A DATE event without DTEND lasts one day.
    assert calendar_shifts(layer, utc(2026, 3, 1), utc(2026, 4, 1)) == [
        Shift("carol", utc(2026, 3, 19, 15), utc(2026, 3, 20, 15))
    ]


def test_vtimezone_definitions_are_used() -> None:
    text = lines(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//x//y//EN",
        "BEGIN:VTIMEZONE",
        "TZID:Custom Central",
        "BEGIN:STANDARD",
        "DTSTART:16011104T020000",
        "RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11",
        "TZOFFSETFROM:-0500",
        "TZOFFSETTO:-0600",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:16010311T020000",
        "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3",
        "TZOFFSETFROM:-0600",
        "TZOFFSETTO:-0500",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
        "UID:1",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;TZID=Custom Central:20260307T090000",
        "DTEND;TZID=Custom Central:20260309T090000",
        "SUMMARY:Dave",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    layer = parse_calendar(text, DIRECTORY.get)
    assert calendar_shifts(layer, utc(2026, 3, 1), utc(2026, 4, 1)) == [
        Shift("dave", utc(2026, 3, 7, 15), utc(2026, 3, 9, 14))
    ]


def test_user_resolution_order() -> None:
    calls: list[str] = []

    def resolve(name: str) -> str | None:
        calls.append(name)
        return DIRECTORY.get(name)

    layer = parse_calendar(IMPORT, resolve)
    # Attendees first (the stranger is tried and skipped), then the summary.
    assert calls[:2] == ["stranger@example.com", "alice@example.com"]
    assert "Weekend pager" not in calls[:2]
    assert dict(layer.users)["alice@example.com"] == "alice"
    assert "On call: Carol" not in calls  # the "On call:" prefix is stripped
    assert "Carol" in calls


def test_overlapping_calendar_events_put_both_on_call() -> None:
    text = lines(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//x//y//EN",
        "BEGIN:VEVENT",
        "UID:1",
        "DTSTAMP:20260101T000000Z",
        "DTSTART:20260301T000000Z",
        "DTEND:20260301T120000Z",
        "SUMMARY:Dave",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:2",
        "DTSTAMP:20260101T000000Z",
        "DTSTART:20260301T060000Z",
        "DTEND:20260301T180000Z",
        "SUMMARY:Carol",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:3",
        "DTSTAMP:20260101T000000Z",
        "DTSTART:20260301T100000Z",
        "DTEND:20260301T200000Z",
        "SUMMARY:Dave",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    layer = parse_calendar(text, DIRECTORY.get)
    sched = Schedule("cal", "UTC", (Layer(users=(), calendar=layer),))
    assert on_call_at(sched, utc(2026, 3, 1, 7)) == ("carol", "dave")
    assert shifts(sched, utc(2026, 3, 1), utc(2026, 3, 2)) == [
        Shift("dave", utc(2026, 3, 1), utc(2026, 3, 1, 20)),  # overlapping events merged
        Shift("carol", utc(2026, 3, 1, 6), utc(2026, 3, 1, 18)),
    ]
    # The layer's users, when given, order the on-call set.
    ordered = Schedule("cal", "UTC", (Layer(users=("dave",), calendar=layer),))
    assert on_call_at(ordered, utc(2026, 3, 1, 7)) == ("dave", "carol")


def test_calendar_layer_in_a_schedule() -> None:
    layer = parse_calendar(IMPORT, DIRECTORY.get, default_zone="Europe/Berlin")
    hash(layer)  # frozen and hashable: schedules holding it can be cached
    sched = Schedule(
        "mixed",
        "Europe/Berlin",
        (
            Layer(
                users=("base",),
                rotation=parse_rotation(
                    {"type": "daily", "handoff": "00:00", "start": "2026-01-01"}
                ),
            ),
            # Calendar events count only inside the restriction (Saturdays, 10:00-18:00).
            Layer(
                users=(),
                calendar=layer,
                restrictions=(
                    parse_restriction({"days": ["sat"], "from": "10:00", "to": "18:00"}),
                ),
            ),
        ),
    )
    assert on_call_at(sched, datetime(2026, 3, 14, 9, 30, tzinfo=BERLIN)) == ("base",)
    assert on_call_at(sched, datetime(2026, 3, 14, 10, tzinfo=BERLIN)) == ("alice",)
    assert on_call_at(sched, datetime(2026, 3, 15, 10, tzinfo=BERLIN)) == ("base",)  # Sunday
    assert layer_shifts(sched, 1, utc(2026, 3, 9), utc(2026, 3, 16)) == [
        Shift("alice", utc(2026, 3, 14, 9), utc(2026, 3, 14, 17))
    ]
    window = (utc(2026, 3, 9), utc(2026, 3, 16))
    for found in shifts(sched, *window):
        assert on_call_at(sched, found.starts_at)[0] == found.user


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "not an iCalendar file"),
        ("", "not an iCalendar file"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (lines("BEGIN:VEVENT", "UID:1", "END:VEVENT"), "expected VCALENDAR"),
        (
            lines(
                "BEGIN:VCALENDAR",
                "BEGIN:VEVENT",
                "UID:1",
                "DTSTART:garbage",
                "END:VEVENT",
                "END:VCALENDAR",
            ),
            "invalid DTSTART",
        ),
        (
            lines(
                "BEGIN:VCALENDAR",
                "BEGIN:VEVENT",
                "UID:1",
                "SUMMARY:x",
                "END:VEVENT",
                "END:VCALENDAR",
            ),
            "no DTSTART",
        ),
        (
            lines(
                "BEGIN:VCALENDAR",
                "BEGIN:VEVENT",
                "UID:1",
                "DTSTART:20260101T000000Z",
                "RRULE:FREQ=BOGUS",
                "END:VEVENT",
                "END:VCALENDAR",
            ),
            "RRULE",
        ),
        (
            lines("BEGIN:VCALENDAR", "X-WR-TIMEZONE:Mars/Olympus", "END:VCALENDAR"),
            "unknown time zone",
        ),
        (lines("BEGIN:VCALENDAR", "BEGIN:VEVENT", "END:VCALENDAR"), "not an iCalendar file"),
    ],
)
def test_malformed_calendars_are_rejected(text: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_calendar(text, DIRECTORY.get)


def test_unknown_default_zone_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_calendar(IMPORT, DIRECTORY.get, default_zone="Nowhere/Special")


def test_bytes_with_bom_are_accepted() -> None:
    layer = parse_calendar(b"\xef\xbb\xbf" + IMPORT.encode(), DIRECTORY.get)
    assert isinstance(layer, CalendarLayer)
    assert layer.text.startswith("BEGIN:VCALENDAR")
