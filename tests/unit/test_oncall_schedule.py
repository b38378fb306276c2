"""On-call schedules, goalert style: build a schedule, then ask who is on call when."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocsin.core.oncall.schedule import (
    Layer,
    Override,
    OverrideKind,
    Restriction,
    Rotation,
    Schedule,
    Shift,
    gaps,
    layer_shifts,
    next_change,
    next_shifts,
    on_call_at,
    parse_restriction,
    parse_rotation,
    shifts,
)

BERLIN = ZoneInfo("Europe/Berlin")
CHICAGO = ZoneInfo("America/Chicago")
H = timedelta(hours=1)
D = timedelta(days=1)


def at(
    zone: ZoneInfo,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    """A wall-clock instant in a zone (fold=1 picks the second of a repeated time)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def rotation(type_: str, handoff: str, start: str = "2026-01-05", **extra: Any) -> Rotation:
    return parse_rotation({"type": type_, "handoff": handoff, "start": start, **extra})


def restrict(days: Any, start: str, end: str) -> Restriction:
    return parse_restriction({"days": days, "from": start, "to": end})


def schedule(
    zone: str, *layers: Layer, overrides: tuple[Override, ...] = (), id_: str = "s"
) -> Schedule:
    return Schedule(id=id_, time_zone=zone, layers=layers, overrides=overrides)


def single(
    zone: str,
    rot: Rotation | None,
    users: tuple[str, ...] = ("alice", "bob"),
    restrictions: tuple[Restriction, ...] = (),
) -> Schedule:
    return schedule(zone, Layer(users=users, rotation=rot, restrictions=restrictions))


def shift_table(sched: Schedule, start: datetime, end: datetime) -> list[tuple[str, str, str]]:
    """Shifts as (user, start, end) in the schedule's own wall-clock time, for readable asserts."""
    zone = ZoneInfo(sched.time_zone)
    return [
        (
            s.user,
            f"{s.starts_at.astimezone(zone):%m-%d %H:%M}",
            f"{s.ends_at.astimezone(zone):%m-%d %H:%M}",
        )
        for s in shifts(sched, start, end)
    ]


# --- the configuration from the issue ---

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
    ),
)
SECONDARY = Schedule(
    id="secondary",
    time_zone="America/Chicago",
    layers=(
        Layer(
            users=("bob", "alice"),
            rotation=parse_rotation({"type": "daily", "handoff": "08:00", "start": "2026-01-05"}),
            restrictions=(
                parse_restriction(
                    {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "18:00"}
                ),
            ),
        ),
    ),
)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (at(BERLIN, 2026, 1, 5, 8, 59), ()),  # before the first handoff
        (at(BERLIN, 2026, 1, 5, 9, 0), ("alice",)),
        (at(BERLIN, 2026, 1, 9, 23, 0), ("alice",)),
        (at(BERLIN, 2026, 1, 12, 8, 59, 59), ("alice",)),
        (at(BERLIN, 2026, 1, 12, 9, 0), ("bob",)),
        (at(BERLIN, 2026, 1, 19, 9, 0), ("alice",)),
        (at(BERLIN, 2026, 7, 6, 9, 0), ("alice",)),  # week 26 across the spring DST change
        (at(BERLIN, 2026, 7, 13, 8, 0), ("alice",)),
        (at(BERLIN, 2026, 7, 13, 9, 0), ("bob",)),
        (at(BERLIN, 2025, 12, 29, 12, 0), ()),
    ],
)
def test_issue_primary(instant: datetime, expected: tuple[str, ...]) -> None:
    assert on_call_at(PRIMARY, instant) == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (at(CHICAGO, 2026, 1, 5, 7, 59), ()),
        (at(CHICAGO, 2026, 1, 5, 8, 0), ("bob",)),
        (at(CHICAGO, 2026, 1, 5, 17, 59), ("bob",)),
        (at(CHICAGO, 2026, 1, 5, 18, 0), ()),
        (at(CHICAGO, 2026, 1, 6, 7, 0), ()),
        (at(CHICAGO, 2026, 1, 6, 8, 0), ("alice",)),
        (at(CHICAGO, 2026, 1, 9, 12, 0), ("bob",)),  # Friday: shift 4
        (at(CHICAGO, 2026, 1, 10, 12, 0), ()),  # Saturday: shift 5 is outside the restriction
        (at(CHICAGO, 2026, 1, 11, 12, 0), ()),  # Sunday
        (at(CHICAGO, 2026, 1, 12, 8, 0), ("alice",)),  # Monday: shift 7
    ],
)
def test_issue_secondary(instant: datetime, expected: tuple[str, ...]) -> None:
    assert on_call_at(SECONDARY, instant) == expected


def test_issue_secondary_week_of_shifts() -> None:
    table = shift_table(SECONDARY, at(CHICAGO, 2026, 1, 5), at(CHICAGO, 2026, 1, 13))
    assert table == [
        ("bob", "01-05 08:00", "01-05 18:00"),
        ("alice", "01-06 08:00", "01-06 18:00"),
        ("bob", "01-07 08:00", "01-07 18:00"),
        ("alice", "01-08 08:00", "01-08 18:00"),
        ("bob", "01-09 08:00", "01-09 18:00"),
        ("alice", "01-12 08:00", "01-12 18:00"),
    ]


# --- parsing ---


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"type": "weekly", "handoff": "Mon 09:00", "start": "2026-01-05"},
            Rotation("weekly", "Mon 09:00", date(2026, 1, 5)),
        ),
        (
            {"type": "custom", "handoff": "08:00", "start": date(2026, 1, 5), "length": "12h"},
            Rotation("custom", "08:00", date(2026, 1, 5), length=timedelta(hours=12)),
        ),
        (
            {"type": "daily", "handoff": 1020, "start": "2026-01-05", "every": 2},
            Rotation("daily", "17:00", date(2026, 1, 5), every=2),
        ),
        (
            {"type": "MONTHLY", "handoff": "last 18:00", "start": "2026-01-05"},
            Rotation("monthly", "last 18:00", date(2026, 1, 5)),
        ),
    ],
)
def test_parse_rotation(spec: dict[str, Any], expected: Rotation) -> None:
    assert parse_rotation(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "yearly", "handoff": "09:00", "start": "2026-01-05"}, "yearly"),
        ({"type": "daily", "handoff": "9am", "start": "2026-01-05"}, "HH:MM"),
        ({"type": "daily", "handoff": "24:00", "start": "2026-01-05"}, "00-23"),
        ({"type": "weekly", "handoff": "09:00", "start": "2026-01-05"}, "<weekday> HH:MM"),
        ({"type": "weekly", "handoff": "someday 09:00", "start": "2026-01-05"}, "someday"),
        ({"type": "monthly", "handoff": "31 09:00", "start": "2026-01-05"}, "1-28"),
        ({"type": "hourly", "handoff": ":75", "start": "2026-01-05"}, "':MM'"),
        ({"type": "daily", "handoff": "09:00", "start": "next monday"}, "YYYY-MM-DD"),
        ({"type": "daily", "handoff": "09:00", "start": datetime(2026, 1, 5)}, "must be a date"),  # noqa: DTZ001
        ({"type": "custom", "handoff": "09:00", "start": "2026-01-05"}, "positive length"),
        ({"type": "daily", "handoff": "09:00", "start": "2026-01-05", "length": "1d"}, "custom"),
        ({"type": "daily", "handoff": "09:00", "start": "2026-01-05", "every": 0}, ">= 1"),
        ({"type": "daily", "handoff": "09:00", "start": "2026-01-05", "every": "2"}, ">= 1"),
        ({"type": "daily", "handoff": "09:00"}, "start is required"),
        ({"type": "daily", "handoff": "09:00", "start": "2026-01-05", "users": []}, "users"),
        ({"type": "daily", "handoff": ["09:00"], "start": "2026-01-05"}, "text"),
    ],
)
def test_parse_rotation_rejects(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_rotation(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"days": ["mon", "Tuesday", "WED"], "from": "09:00", "to": "17:00"},
            Restriction(frozenset({0, 1, 2}), time(9), time(17)),
        ),
        (
            {"days": "weekdays", "from": "09:00", "to": "17:00"},
            Restriction(frozenset(range(5)), time(9), time(17)),
        ),
        (
            {"days": "weekends", "from": "22:00", "to": "06:00"},
            Restriction(frozenset({5, 6}), time(22), time(6)),
        ),
        (
            {"days": "daily", "from": "00:00", "to": "24:00"},
            Restriction(frozenset(range(7)), time(0), time(0)),
        ),
        ({"from": "08:00", "to": 1080}, Restriction(frozenset(range(7)), time(8), time(18))),
        (
            {"days": ["fri-mon"], "from": "18:00", "to": "09:00"},
            Restriction(frozenset({4, 5, 6, 0}), time(18), time(9)),
        ),
        (
            {"days": "mon, wed", "from": "18:00", "to": "09:00"},
            Restriction(frozenset({0, 2}), time(18), time(9)),
        ),
        (
            {"days": [0, 6], "from": time(1), "to": time(2)},
            Restriction(frozenset({0, 6}), time(1), time(2)),
        ),
    ],
)
def test_parse_restriction(spec: dict[str, Any], expected: Restriction) -> None:
    assert parse_restriction(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"days": ["funday"], "from": "09:00", "to": "17:00"}, "funday"),
        ({"days": [], "from": "09:00", "to": "17:00"}, "empty"),
        ({"days": "weekdays", "from": "9", "to": "17:00"}, "from"),
        ({"days": "weekdays", "from": "24:00", "to": "17:00"}, "00-23"),
        ({"days": "weekdays", "to": "17:00"}, "from is required"),
        ({"days": "weekdays", "from": "09:00", "to": "17:00", "zone": "UTC"}, "zone"),
        ({"days": 5, "from": "09:00", "to": "17:00"}, "weekdays"),
        ({"days": [7], "from": "09:00", "to": "17:00"}, "not a weekday"),
    ],
)
def test_parse_restriction_rejects(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_restriction(spec)


def test_model_validation() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Schedule("s", "Mars/Olympus", ())
    with pytest.raises(ValueError, match="no time zone"):
        Override(datetime(2026, 1, 1), utc(2026, 1, 2), "add", "z")  # noqa: DTZ001
    with pytest.raises(ValueError, match="end after"):
        Override(utc(2026, 1, 2), utc(2026, 1, 2), "add", "z")
    with pytest.raises(ValueError, match="only a replace"):
        Override(utc(2026, 1, 1), utc(2026, 1, 2), "add", "z", replaces="a")
    with pytest.raises(ValueError, match="kind"):
        Override(utc(2026, 1, 1), utc(2026, 1, 2), "swap", "z")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weekdays 0-6"):
        Restriction(frozenset({9}), time(9), time(17))
    with pytest.raises(ValueError, match="no time zone"):
        on_call_at(PRIMARY, datetime(2026, 1, 5, 9))  # noqa: DTZ001


# --- rotation types ---


def test_hourly_rotation_order_and_wrap() -> None:
    sched = single("UTC", rotation("hourly", ":30"), users=("a", "b", "c"))
    assert on_call_at(sched, utc(2026, 1, 5, 0, 29)) == ()
    expected = ["a", "b", "c", "a", "b"]
    for hour, user in enumerate(expected):
        assert on_call_at(sched, utc(2026, 1, 5, hour, 30)) == (user,)
        assert on_call_at(sched, utc(2026, 1, 5, hour + 1, 29, 59)) == (user,)


def test_hourly_accepts_hh_mm_and_every() -> None:
    sched = single("UTC", rotation("hourly", "17:15", every=2), users=("a", "b"))
    assert shift_table(sched, utc(2026, 1, 5), utc(2026, 1, 5, 7)) == [
        ("a", "01-05 00:15", "01-05 02:15"),
        ("b", "01-05 02:15", "01-05 04:15"),
        ("a", "01-05 04:15", "01-05 06:15"),
        ("b", "01-05 06:15", "01-05 07:00"),  # clipped to the window
    ]


def test_hourly_is_elapsed_time_across_dst() -> None:
    # Berlin skips 02:00-03:00 on 2026-03-29: hourly shifts stay 3600 s long.
    sched = single("Europe/Berlin", rotation("hourly", ":00", start="2026-03-29"), users=("a", "b"))
    found = shifts(sched, at(BERLIN, 2026, 3, 29), at(BERLIN, 2026, 3, 29, 5))
    assert [s.ends_at - s.starts_at for s in found] == [H] * 4
    assert on_call_at(sched, at(BERLIN, 2026, 3, 29, 3, 0)) == ("a",)  # third handoff: 01:00Z


def test_daily_every_two_days() -> None:
    sched = single("UTC", rotation("daily", "09:00", every=2), users=("a", "b", "c"))
    assert on_call_at(sched, utc(2026, 1, 5, 9)) == ("a",)
    assert on_call_at(sched, utc(2026, 1, 7, 8, 59)) == ("a",)
    assert on_call_at(sched, utc(2026, 1, 7, 9)) == ("b",)
    assert on_call_at(sched, utc(2026, 1, 9, 9)) == ("c",)
    assert on_call_at(sched, utc(2026, 1, 11, 9)) == ("a",)


def test_weekly_first_handoff_is_the_first_weekday_on_or_after_start() -> None:
    # 2026-01-07 is a Wednesday; the first Monday handoff is 2026-01-12.
    sched = single("UTC", rotation("weekly", "MON 09:00", start="2026-01-07"))
    assert on_call_at(sched, utc(2026, 1, 8, 12)) == ()
    assert on_call_at(sched, utc(2026, 1, 12, 8, 59)) == ()
    assert on_call_at(sched, utc(2026, 1, 12, 9)) == ("alice",)
    assert on_call_at(sched, utc(2026, 1, 19, 9)) == ("bob",)


def test_weekly_fortnightly() -> None:
    sched = single("UTC", rotation("weekly", "friday 17:00", every=2))
    assert [s.user for s in shifts(sched, utc(2026, 1, 9, 17), utc(2026, 2, 20, 17))] == [
        "alice",
        "bob",
        "alice",
    ]
    assert on_call_at(sched, utc(2026, 1, 23, 16)) == ("alice",)
    assert on_call_at(sched, utc(2026, 1, 23, 17)) == ("bob",)


def test_monthly_day_of_month() -> None:
    # Start on the 20th: the first "15th" handoff is next month's.
    sched = single("UTC", rotation("monthly", "15 09:00", start="2026-01-20"), users=("a", "b"))
    assert on_call_at(sched, utc(2026, 2, 15, 8)) == ()
    assert on_call_at(sched, utc(2026, 2, 15, 9)) == ("a",)
    assert on_call_at(sched, utc(2026, 3, 15, 9)) == ("b",)
    assert on_call_at(sched, utc(2027, 2, 15, 9)) == ("a",)  # 12 shifts later


def test_monthly_last_day_and_every() -> None:
    sched = single("UTC", rotation("monthly", "last 18:00", start="2027-12-01"), users=("a", "b"))
    table = shift_table(sched, utc(2027, 12, 1), utc(2028, 4, 1))
    assert table == [
        ("a", "12-31 18:00", "01-31 18:00"),
        ("b", "01-31 18:00", "02-29 18:00"),  # 2028 is a leap year
        ("a", "02-29 18:00", "03-31 18:00"),
        ("b", "03-31 18:00", "04-01 00:00"),
    ]
    quarterly = single("UTC", rotation("monthly", "1 00:00", start="2026-01-01", every=3))
    assert on_call_at(quarterly, utc(2026, 3, 31, 23)) == ("alice",)
    assert on_call_at(quarterly, utc(2026, 4, 1)) == ("bob",)


def test_custom_12h_rotation() -> None:
    sched = single(
        "UTC", rotation("custom", "08:00", length="12h"), users=("day", "night", "other")
    )
    assert on_call_at(sched, utc(2026, 1, 5, 7, 59)) == ()
    assert on_call_at(sched, utc(2026, 1, 5, 8)) == ("day",)
    assert on_call_at(sched, utc(2026, 1, 5, 20)) == ("night",)
    assert on_call_at(sched, utc(2026, 1, 6, 8)) == ("other",)
    assert on_call_at(sched, utc(2026, 1, 6, 20)) == ("day",)


def test_custom_is_elapsed_time_across_dst() -> None:
    sched = single(
        "Europe/Berlin",
        rotation("custom", "08:00", start="2026-03-28", length="12h"),
        users=("a", "b"),
    )
    found = shifts(sched, at(BERLIN, 2026, 3, 28), at(BERLIN, 2026, 3, 30))
    assert [s.ends_at - s.starts_at for s in found[:-1]] == [12 * H] * 3
    # 08:00 CET + 24 h of elapsed time is 09:00 CEST.
    assert found[2].starts_at == utc(2026, 3, 29, 7)
    assert found[2].starts_at.astimezone(BERLIN).hour == 9


def test_custom_every_multiplies_length() -> None:
    sched = single("UTC", rotation("custom", "00:00", length="1d", every=3))
    assert on_call_at(sched, utc(2026, 1, 7, 23)) == ("alice",)
    assert on_call_at(sched, utc(2026, 1, 8)) == ("bob",)


def test_far_future_is_index_arithmetic() -> None:
    # on_call_at does O(1) work per layer: 50 years of hourly shifts are not walked.
    # (Measured: ~12 µs per on_call_at for a 3-layer schedule; ~0.3 ms for a week of shifts.)
    sched = single("America/Chicago", rotation("hourly", ":00"), users=("a", "b", "c"))
    start = at(CHICAGO, 2026, 1, 5)
    instant = at(CHICAGO, 2076, 1, 5, 12)
    k = int((instant - start) / H)
    assert on_call_at(sched, instant) == (("a", "b", "c")[k % 3],)
    daily = single("America/Chicago", rotation("daily", "09:00"), users=("a", "b", "c"))
    days = (date(2076, 1, 5) - date(2026, 1, 5)).days
    assert on_call_at(daily, at(CHICAGO, 2076, 1, 5, 9)) == (("a", "b", "c")[days % 3],)


def test_layer_without_users_or_before_start_has_nobody() -> None:
    assert on_call_at(single("UTC", rotation("daily", "09:00"), users=()), utc(2026, 2, 1)) == ()
    assert on_call_at(single("UTC", rotation("daily", "09:00")), utc(2026, 1, 1)) == ()
    assert (
        shifts(
            single("UTC", rotation("daily", "09:00"), users=()), utc(2026, 2, 1), utc(2026, 3, 1)
        )
        == []
    )


def test_layer_without_rotation_is_everybody_always() -> None:
    sched = single("UTC", None, users=("b", "a", "b"))
    assert on_call_at(sched, utc(2026, 1, 1)) == ("b", "a")
    assert shifts(sched, utc(2026, 1, 1), utc(2026, 1, 2)) == [
        Shift("b", utc(2026, 1, 1), utc(2026, 1, 2)),
        Shift("a", utc(2026, 1, 1), utc(2026, 1, 2)),
    ]


def test_repeated_user_in_rotation_merges_adjacent_shifts() -> None:
    sched = single("UTC", rotation("daily", "00:00"), users=("a", "a", "b"))
    assert shift_table(sched, utc(2026, 1, 5), utc(2026, 1, 9)) == [
        ("a", "01-05 00:00", "01-07 00:00"),
        ("b", "01-07 00:00", "01-08 00:00"),
        ("a", "01-08 00:00", "01-09 00:00"),
    ]


# --- DST ---


@pytest.mark.parametrize(
    ("zone", "day_before", "utc_start", "utc_end", "hours"),
    [
        (CHICAGO, date(2026, 3, 7), utc(2026, 3, 7, 15), utc(2026, 3, 8, 14), 23),
        (CHICAGO, date(2026, 10, 31), utc(2026, 10, 31, 14), utc(2026, 11, 1, 15), 25),
        (BERLIN, date(2026, 3, 28), utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), 23),
        (BERLIN, date(2026, 10, 24), utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), 25),
    ],
)
def test_daily_0900_across_dst(
    zone: ZoneInfo, day_before: date, utc_start: datetime, utc_end: datetime, hours: int
) -> None:
    sched = single(str(zone), rotation("daily", "09:00", start=day_before.isoformat()))
    first, second = shifts(sched, utc_start, utc_end + 2 * H)
    assert (first.starts_at, first.ends_at) == (utc_start, utc_end)
    assert first.ends_at - first.starts_at == timedelta(hours=hours)
    assert second.starts_at.astimezone(zone).time() == time(9)
    assert next_change(sched, utc_start) == utc_end


@pytest.mark.parametrize(
    ("zone", "start", "utc_start", "utc_end", "hours"),
    [
        (CHICAGO, "2026-03-07", utc(2026, 3, 7, 15), utc(2026, 3, 14, 14), 167),
        (CHICAGO, "2026-10-31", utc(2026, 10, 31, 14), utc(2026, 11, 7, 15), 169),
        (BERLIN, "2026-03-28", utc(2026, 3, 28, 8), utc(2026, 4, 4, 7), 167),
        (BERLIN, "2026-10-24", utc(2026, 10, 24, 7), utc(2026, 10, 31, 8), 169),
    ],
)
def test_weekly_0900_across_dst(
    zone: ZoneInfo, start: str, utc_start: datetime, utc_end: datetime, hours: int
) -> None:
    sched = single(str(zone), rotation("weekly", "saturday 09:00", start=start))
    first = shifts(sched, utc_start, utc_end)[0]
    assert (first.user, first.starts_at, first.ends_at) == ("alice", utc_start, utc_end)
    assert first.ends_at - first.starts_at == timedelta(hours=hours)
    assert on_call_at(sched, utc_end - timedelta(seconds=1)) == ("alice",)
    assert on_call_at(sched, utc_end) == ("bob",)


@pytest.mark.parametrize(
    ("zone", "day_before", "handoffs"),
    [
        # Spring forward: 02:30 does not exist on the DST day and happens at 03:30 local.
        (
            BERLIN,
            "2026-03-28",
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
        ),
        (
            CHICAGO,
            "2026-03-07",
            [utc(2026, 3, 7, 8, 30), utc(2026, 3, 8, 8, 30), utc(2026, 3, 9, 7, 30)],
        ),
    ],
)
def test_missing_local_handoff_moves_past_the_gap(
    zone: ZoneInfo, day_before: str, handoffs: list[datetime]
) -> None:
    sched = single(str(zone), rotation("daily", "02:30", start=day_before), users=("a", "b", "c"))
    found = shifts(sched, handoffs[0], handoffs[-1] + D)
    assert [s.starts_at for s in found[:3]] == handoffs
    assert found[1].starts_at.astimezone(zone).time() == time(3, 30)
    # 24 h (02:30 standard → 03:30 daylight), then 23 h (03:30 → 02:30 daylight).
    assert [s.ends_at - s.starts_at for s in found[:2]] == [24 * H, 23 * H]
    assert on_call_at(sched, handoffs[1] - timedelta(microseconds=1)) == ("a",)
    assert on_call_at(sched, handoffs[1]) == ("b",)


@pytest.mark.parametrize(
    ("zone", "handoff", "day_before", "handoffs"),
    [
        # Fall back: Berlin repeats 02:00-02:59 on 2026-10-25; the first 02:30 (CEST) counts.
        (
            BERLIN,
            "02:30",
            "2026-10-24",
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        # Chicago repeats 01:00-01:59 on 2026-11-01 (its 02:30 is not ambiguous): 01:30 CDT counts.
        (
            CHICAGO,
            "01:30",
            "2026-10-31",
            [utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 6, 30), utc(2026, 11, 2, 7, 30)],
        ),
        (
            CHICAGO,
            "02:30",
            "2026-10-31",
            [utc(2026, 10, 31, 7, 30), utc(2026, 11, 1, 8, 30), utc(2026, 11, 2, 8, 30)],
        ),
    ],
)
def test_ambiguous_local_handoff_uses_first_occurrence(
    zone: ZoneInfo, handoff: str, day_before: str, handoffs: list[datetime]
) -> None:
    sched = single(str(zone), rotation("daily", handoff, start=day_before), users=("a", "b", "c"))
    found = shifts(sched, handoffs[0], handoffs[-1] + D)
    assert [s.starts_at for s in found[:3]] == handoffs
    assert [s.ends_at - s.starts_at for s in found[:2]] == [
        handoffs[1] - handoffs[0],
        handoffs[2] - handoffs[1],
    ]
    # The second occurrence of the repeated wall-clock time is no new handoff.
    hour, minute = map(int, handoff.split(":"))
    second = at(zone, handoffs[1].year, handoffs[1].month, handoffs[1].day, hour, minute, fold=1)
    assert on_call_at(sched, second) == ("b",)


def test_fall_back_handoff_durations() -> None:
    berlin = single("Europe/Berlin", rotation("daily", "02:30", start="2026-10-24"))
    first, second = shifts(berlin, utc(2026, 10, 24, 0, 30), utc(2026, 10, 26, 1, 30))
    assert (first.ends_at - first.starts_at, second.ends_at - second.starts_at) == (24 * H, 25 * H)


def test_weekly_handoff_on_missing_time() -> None:
    sched = single("Europe/Berlin", rotation("weekly", "sunday 02:30", start="2026-03-22"))
    first, second = shifts(sched, utc(2026, 3, 22), utc(2026, 4, 6))[:2]
    assert first.starts_at == utc(2026, 3, 22, 1, 30)  # 02:30 CET
    assert second.starts_at == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert second.ends_at == utc(2026, 4, 5, 0, 30)  # 02:30 CEST


# --- restrictions ---


def test_weekday_business_hours() -> None:
    sched = single(
        "Europe/Berlin",
        rotation("weekly", "monday 09:00"),
        restrictions=(restrict("weekdays", "09:00", "17:00"),),
    )
    assert on_call_at(sched, at(BERLIN, 2026, 1, 12, 8, 59)) == ()
    assert on_call_at(sched, at(BERLIN, 2026, 1, 12, 9)) == ("bob",)
    assert on_call_at(sched, at(BERLIN, 2026, 1, 16, 16, 59)) == ("bob",)
    assert on_call_at(sched, at(BERLIN, 2026, 1, 16, 17)) == ()
    assert on_call_at(sched, at(BERLIN, 2026, 1, 17, 12)) == ()
    table = shift_table(sched, at(BERLIN, 2026, 1, 12), at(BERLIN, 2026, 1, 19))
    assert table == [("bob", f"01-{d:02d} 09:00", f"01-{d:02d} 17:00") for d in range(12, 17)]


def test_overnight_restriction() -> None:
    sched = single(
        "UTC", None, users=("nightowl",), restrictions=(restrict(["fri"], "22:00", "06:00"),)
    )
    assert on_call_at(sched, utc(2026, 1, 9, 21, 59)) == ()  # Friday
    assert on_call_at(sched, utc(2026, 1, 9, 22)) == ("nightowl",)
    assert on_call_at(sched, utc(2026, 1, 10, 5, 59)) == ("nightowl",)  # Saturday morning
    assert on_call_at(sched, utc(2026, 1, 10, 6)) == ()
    assert on_call_at(sched, utc(2026, 1, 10, 23)) == ()  # Saturday night is not listed
    assert gaps(sched, utc(2026, 1, 9), utc(2026, 1, 11)) == [
        (utc(2026, 1, 9), utc(2026, 1, 9, 22)),
        (utc(2026, 1, 10, 6), utc(2026, 1, 11)),
    ]


def test_restriction_splits_a_shift_at_its_handoff() -> None:
    sched = single(
        "UTC", rotation("daily", "12:00"), restrictions=(restrict("daily", "09:00", "17:00"),)
    )
    assert shift_table(sched, utc(2026, 1, 6), utc(2026, 1, 7)) == [
        ("alice", "01-06 09:00", "01-06 12:00"),
        ("bob", "01-06 12:00", "01-06 17:00"),
    ]


def test_adjacent_restriction_windows_merge() -> None:
    sched = single(
        "UTC",
        None,
        users=("a",),
        restrictions=(restrict("daily", "00:00", "24:00"), restrict(["mon"], "08:00", "10:00")),
    )
    assert shifts(sched, utc(2026, 1, 5), utc(2026, 1, 12)) == [
        Shift("a", utc(2026, 1, 5), utc(2026, 1, 12))
    ]


@pytest.mark.parametrize(
    ("day", "night_hours"),
    [(date(2026, 3, 28), 7), (date(2026, 10, 24), 9)],
)
def test_restriction_windows_follow_wall_clock_across_dst(day: date, night_hours: int) -> None:
    sched = single(
        "Europe/Berlin",
        None,
        users=("a",),
        restrictions=(restrict("daily", "22:00", "06:00"), restrict("daily", "09:00", "17:00")),
    )
    start = at(BERLIN, day.year, day.month, day.day)
    found = layer_shifts(sched, 0, start + 12 * H, start + 2 * D)
    zone_times = [
        (s.starts_at.astimezone(BERLIN).time(), s.ends_at.astimezone(BERLIN).time()) for s in found
    ]
    assert zone_times == [
        (time(12), time(17)),
        (time(22), time(6)),
        (time(9), time(17)),
        (time(22), time(0)),
    ]
    assert found[1].ends_at - found[1].starts_at == timedelta(hours=night_hours)
    assert found[2].ends_at - found[2].starts_at == 8 * H


# --- layers ---


def test_higher_layer_wins_and_lower_layer_fills_gaps() -> None:
    sched = schedule(
        "America/Chicago",
        Layer(users=("base1", "base2"), rotation=rotation("weekly", "monday 09:00")),
        Layer(
            users=("day",),
            rotation=rotation("daily", "09:00"),
            restrictions=(restrict("weekdays", "09:00", "17:00"),),
        ),
    )
    assert on_call_at(sched, at(CHICAGO, 2026, 1, 6, 10)) == ("day",)
    assert on_call_at(sched, at(CHICAGO, 2026, 1, 6, 18)) == ("base1",)
    assert on_call_at(sched, at(CHICAGO, 2026, 1, 10, 10)) == ("base1",)
    assert shift_table(sched, at(CHICAGO, 2026, 1, 6), at(CHICAGO, 2026, 1, 7)) == [
        ("base1", "01-06 00:00", "01-06 09:00"),
        ("day", "01-06 09:00", "01-06 17:00"),
        ("base1", "01-06 17:00", "01-07 00:00"),
    ]
    assert layer_shifts(sched, 0, at(CHICAGO, 2026, 1, 6), at(CHICAGO, 2026, 1, 7)) == [
        Shift(
            "base1",
            at(CHICAGO, 2026, 1, 6).astimezone(UTC),
            at(CHICAGO, 2026, 1, 7).astimezone(UTC),
        )
    ]


def test_gaps_when_no_layer_covers() -> None:
    sched = schedule(
        "UTC",
        Layer(users=("a",), rotation=rotation("daily", "00:00", start="2026-01-07")),
        Layer(
            users=("b",),
            rotation=rotation("daily", "00:00"),
            restrictions=(restrict("daily", "09:00", "17:00"),),
        ),
    )
    assert gaps(sched, utc(2026, 1, 5), utc(2026, 1, 8)) == [
        (utc(2026, 1, 5), utc(2026, 1, 5, 9)),
        (utc(2026, 1, 5, 17), utc(2026, 1, 6, 9)),
        (utc(2026, 1, 6, 17), utc(2026, 1, 7)),
    ]
    assert gaps(sched, utc(2026, 1, 8), utc(2026, 1, 10)) == []
    assert gaps(sched, utc(2026, 1, 8), utc(2026, 1, 8)) == []


def test_next_shifts_counts_current_and_upcoming() -> None:
    sched = single("UTC", rotation("daily", "09:00"), users=("a", "b", "c"))
    found = next_shifts(sched, utc(2026, 1, 6, 12), 4)
    assert found == [
        Shift("b", utc(2026, 1, 6, 12), utc(2026, 1, 7, 9)),  # current, clipped to now
        Shift("c", utc(2026, 1, 7, 9), utc(2026, 1, 8, 9)),
        Shift("a", utc(2026, 1, 8, 9), utc(2026, 1, 9, 9)),
        Shift("b", utc(2026, 1, 9, 9), utc(2026, 1, 10, 9)),
    ]
    assert next_shifts(sched, utc(2026, 1, 6, 12), 0) == []
    # Long shifts need a wider look-ahead than the first window.
    monthly = single("UTC", rotation("monthly", "1 09:00"))
    assert [s.user for s in next_shifts(monthly, utc(2026, 1, 1), 3)] == ["alice", "bob", "alice"]
    # Handoff 0 is the first "1st" on or after the start (2026-01-05): February 1st.
    assert next_shifts(monthly, utc(2026, 1, 1), 3)[0].starts_at == utc(2026, 2, 1, 9)
    assert next_shifts(monthly, utc(2026, 1, 1), 3)[-1].ends_at == utc(2026, 5, 1, 9)
    # A single never-ending shift stops at the horizon.
    forever = single("UTC", None, users=("x",))
    assert next_shifts(forever, utc(2026, 1, 1), 2, horizon=10 * D) == [
        Shift("x", utc(2026, 1, 1), utc(2026, 1, 11))
    ]


def test_next_change() -> None:
    sched = SECONDARY
    friday_evening = at(CHICAGO, 2026, 1, 9, 17)
    assert next_change(sched, friday_evening) == at(CHICAGO, 2026, 1, 9, 18).astimezone(UTC)
    assert next_change(sched, at(CHICAGO, 2026, 1, 9, 18)) == at(
        CHICAGO, 2026, 1, 12, 8
    ).astimezone(UTC)
    assert next_change(PRIMARY, at(BERLIN, 2026, 1, 1)) == at(BERLIN, 2026, 1, 5, 9).astimezone(UTC)
    assert next_change(single("UTC", None, users=("x",)), utc(2026, 1, 1)) is None
    assert (
        next_change(single("UTC", rotation("daily", "00:00"), users=("x",)), utc(2026, 1, 9))
        is None
    )
    # A handoff to the same user is no change; the next real one is weeks away.
    sched = single("UTC", rotation("weekly", "monday 00:00"), users=("a", "a", "a", "b"))
    assert next_change(sched, utc(2026, 1, 6)) == utc(2026, 1, 26)
    assert next_change(sched, utc(2026, 1, 6), horizon=14 * D) is None


# --- overrides ---


DAILY_AB = rotation("daily", "09:00")


def with_overrides(*overrides: Override) -> Schedule:
    return schedule("UTC", Layer(users=("alice", "bob"), rotation=DAILY_AB), overrides=overrides)


def test_override_add_partially_overlapping() -> None:
    sched = with_overrides(Override(utc(2026, 1, 5, 20), utc(2026, 1, 6, 12), "add", "zed"))
    assert on_call_at(sched, utc(2026, 1, 5, 21)) == ("alice", "zed")
    assert on_call_at(sched, utc(2026, 1, 6, 10)) == ("bob", "zed")
    assert shift_table(sched, utc(2026, 1, 5, 9), utc(2026, 1, 7, 9)) == [
        ("alice", "01-05 09:00", "01-06 09:00"),
        ("zed", "01-05 20:00", "01-06 12:00"),
        ("bob", "01-06 09:00", "01-07 09:00"),
    ]


def test_override_add_fills_a_gap() -> None:
    sched = with_overrides(Override(utc(2026, 1, 5, 6), utc(2026, 1, 5, 10), "add", "zed"))
    assert on_call_at(sched, utc(2026, 1, 5, 7)) == ("zed",)
    assert gaps(sched, utc(2026, 1, 5), utc(2026, 1, 6)) == [(utc(2026, 1, 5), utc(2026, 1, 5, 6))]


def test_override_remove_splits_a_shift() -> None:
    sched = with_overrides(Override(utc(2026, 1, 5, 12), utc(2026, 1, 5, 14), "remove", "alice"))
    assert on_call_at(sched, utc(2026, 1, 5, 13)) == ()
    assert shift_table(sched, utc(2026, 1, 5, 9), utc(2026, 1, 6, 9)) == [
        ("alice", "01-05 09:00", "01-05 12:00"),
        ("alice", "01-05 14:00", "01-06 09:00"),
    ]
    assert gaps(sched, utc(2026, 1, 5, 9), utc(2026, 1, 6, 9)) == [
        (utc(2026, 1, 5, 12), utc(2026, 1, 5, 14))
    ]
    assert next_change(sched, utc(2026, 1, 5, 10)) == utc(2026, 1, 5, 12)


def test_override_replace_named_user_across_a_handoff() -> None:
    sched = with_overrides(
        Override(utc(2026, 1, 5, 18), utc(2026, 1, 6, 18), "replace", "zed", replaces="alice")
    )
    assert on_call_at(sched, utc(2026, 1, 5, 19)) == ("zed",)
    assert on_call_at(sched, utc(2026, 1, 6, 10)) == ("bob",)  # alice is not on call: no change
    assert shift_table(sched, utc(2026, 1, 5, 9), utc(2026, 1, 7, 9)) == [
        ("alice", "01-05 09:00", "01-05 18:00"),
        ("zed", "01-05 18:00", "01-06 09:00"),
        ("bob", "01-06 09:00", "01-07 09:00"),
    ]


def test_override_replace_everybody() -> None:
    sched = with_overrides(
        Override(utc(2026, 1, 5, 10), utc(2026, 1, 5, 20), "add", "extra"),
        Override(utc(2026, 1, 5, 12), utc(2026, 1, 5, 14), "replace", "zed"),
    )
    assert on_call_at(sched, utc(2026, 1, 5, 11)) == ("alice", "extra")
    assert on_call_at(sched, utc(2026, 1, 5, 13)) == ("zed",)
    assert on_call_at(sched, utc(2026, 1, 5, 15)) == ("alice", "extra")
    # Replacing everybody in a gap puts the user on call too.
    assert on_call_at(
        with_overrides(Override(utc(2026, 1, 1), utc(2026, 1, 2), "replace", "z")), utc(2026, 1, 1)
    ) == ("z",)


def test_override_order_and_duplicates() -> None:
    window = (utc(2026, 1, 5, 10), utc(2026, 1, 5, 11))
    add_then_remove = with_overrides(
        Override(*window, "add", "z"), Override(*window, "remove", "z")
    )
    assert on_call_at(add_then_remove, window[0]) == ("alice",)
    remove_then_add = with_overrides(
        Override(*window, "remove", "z"), Override(*window, "add", "z")
    )
    assert on_call_at(remove_then_add, window[0]) == ("alice", "z")
    add_existing = with_overrides(Override(*window, "add", "alice"))
    assert on_call_at(add_existing, window[0]) == ("alice",)
    replace_with_present = with_overrides(
        Override(*window, "add", "z"), Override(*window, "replace", "z", replaces="alice")
    )
    assert on_call_at(replace_with_present, window[0]) == ("z",)
    aware_elsewhere = with_overrides(
        Override(window[0].astimezone(BERLIN), window[1].astimezone(CHICAGO), "add", "z")
    )
    assert shifts(aware_elsewhere, *window)[1] == Shift("z", *window)
    assert shifts(aware_elsewhere, *window)[1].starts_at.tzinfo is UTC


def test_override_outside_window_is_ignored() -> None:
    sched = with_overrides(Override(utc(2025, 1, 1), utc(2025, 1, 2), "replace", "z"))
    assert shift_table(sched, utc(2026, 1, 5, 9), utc(2026, 1, 6, 9)) == [
        ("alice", "01-05 09:00", "01-06 09:00")
    ]


def test_results_are_utc() -> None:
    found = shifts(PRIMARY, at(BERLIN, 2026, 1, 5), at(BERLIN, 2026, 1, 20))
    assert all(s.starts_at.tzinfo is UTC and s.ends_at.tzinfo is UTC for s in found)
    change = next_change(PRIMARY, at(BERLIN, 2026, 1, 5))
    assert change is not None
    assert change.tzinfo is UTC


# --- properties ---

USERS = ("a", "b", "c", "d")
ZONES = ("UTC", "Europe/Berlin", "America/Chicago", "Asia/Kolkata", "Australia/Lord_Howe")
BASE = utc(2026, 1, 1)


@st.composite
def rotations(draw: st.DrawFn) -> Rotation:
    type_ = draw(st.sampled_from(["hourly", "daily", "weekly", "monthly", "custom"]))
    clock = f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 15, 30, 59])):02d}"
    handoff = {
        "hourly": clock[2:],
        "daily": clock,
        "custom": clock,
        "weekly": f"{draw(st.sampled_from(['mon', 'wed', 'sunday']))} {clock}",
        "monthly": f"{draw(st.sampled_from(['1', '15', '28', 'last']))} {clock}",
    }[type_]
    length = draw(st.sampled_from(["90m", "8h", "12h", "2d"])) if type_ == "custom" else None
    start = date(2025, 12, 1) + timedelta(days=draw(st.integers(0, 400)))
    every = draw(st.integers(1, 3))
    spec: dict[str, Any] = {
        "type": type_,
        "handoff": handoff,
        "start": start.isoformat(),
        "every": every,
    }
    if length:
        spec["length"] = length
    return parse_rotation(spec)


@st.composite
def restrictions(draw: st.DrawFn) -> Restriction:
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    start = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    end = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    return Restriction(days, start, end)


@st.composite
def layers(draw: st.DrawFn) -> Layer:
    users = tuple(draw(st.lists(st.sampled_from(USERS), max_size=3)))
    rot = (
        draw(st.one_of(st.none(), rotations()))
        if draw(st.integers(0, 5)) == 0
        else draw(rotations())
    )
    return Layer(
        users=users, rotation=rot, restrictions=tuple(draw(st.lists(restrictions(), max_size=2)))
    )


@st.composite
def overrides(draw: st.DrawFn) -> Override:
    starts = BASE + timedelta(minutes=draw(st.integers(0, 500 * 24 * 60)))
    ends = starts + timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
    kind: OverrideKind = draw(st.sampled_from(["add", "remove", "replace"]))
    replaces = draw(st.one_of(st.none(), st.sampled_from(USERS))) if kind == "replace" else None
    return Override(starts, ends, kind, draw(st.sampled_from((*USERS, "z"))), replaces)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    return Schedule(
        id="p",
        time_zone=draw(st.sampled_from(ZONES)),
        layers=tuple(draw(st.lists(layers(), min_size=1, max_size=3))),
        overrides=tuple(draw(st.lists(overrides(), max_size=3))),
    )


# Windows around DST changes in both hemispheres and in plain weeks.
window_starts = st.one_of(
    st.sampled_from(
        [utc(2026, 3, 27), utc(2026, 3, 6), utc(2026, 10, 23), utc(2026, 10, 30), utc(2026, 4, 3)]
    ),
    st.integers(0, 500 * 24).map(lambda hours: BASE + timedelta(hours=hours)),
)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(
    sched=schedules(),
    start=window_starts,
    span=st.integers(1, 6 * 24 * 60),
    probes=st.lists(st.floats(0, 1), min_size=1, max_size=8),
)
def test_on_call_at_agrees_with_shifts(
    sched: Schedule, start: datetime, span: int, probes: list[float]
) -> None:
    end = start + timedelta(minutes=span)
    found = shifts(sched, start, end)
    instants = [start + (end - start) * p for p in probes]
    instants = [t for t in instants if t < end]
    for s in found:  # the edges are where off-by-one errors live
        instants += [s.starts_at, s.ends_at - timedelta(microseconds=1)]
        if s.ends_at < end:
            instants.append(s.ends_at)
    for t in instants:
        expected = {s.user for s in found if s.starts_at <= t < s.ends_at}
        got = on_call_at(sched, t)
        assert set(got) == expected, t
        assert len(got) == len(set(got))
    uncovered = gaps(sched, start, end)
    for t in instants:
        in_gap = any(begins <= t < ends for begins, ends in uncovered)
        assert in_gap == (not on_call_at(sched, t))


@PROPERTY_SETTINGS
@given(sched=schedules(), start=window_starts, span=st.integers(1, 10 * 24 * 60))
def test_shifts_are_sorted_clipped_and_merged(sched: Schedule, start: datetime, span: int) -> None:
    end = start + timedelta(minutes=span)
    found = shifts(sched, start, end)
    assert [s.starts_at for s in found] == sorted(s.starts_at for s in found)
    by_user: dict[str, list[Shift]] = {}
    for s in found:
        assert start <= s.starts_at < s.ends_at <= end
        assert s.starts_at.tzinfo is UTC
        by_user.setdefault(s.user, []).append(s)
    for pieces in by_user.values():
        for before, after in pairwise(pieces):
            assert before.ends_at < after.starts_at  # neither overlapping nor adjacent
    for index in range(len(sched.layers)):
        own = layer_shifts(sched, index, start, end)
        assert all(start <= s.starts_at < s.ends_at <= end for s in own)


@PROPERTY_SETTINGS
@given(sched=schedules(), after=window_starts, probes=st.lists(st.floats(0, 1), max_size=6))
def test_next_change_is_a_real_change_point(
    sched: Schedule, after: datetime, probes: list[float]
) -> None:
    horizon = timedelta(days=20)
    change = next_change(sched, after, horizon)
    before = on_call_at(sched, after)
    if change is None:
        assert shifts(sched, after, after + horizon) == [
            Shift(user, after, after + horizon) for user in before
        ]
        return
    assert after < change <= after + horizon
    assert on_call_at(sched, change) != before
    assert on_call_at(sched, change - timedelta(microseconds=1)) == before
    for p in probes:
        probe = after + (change - after) * p
        if probe < change:
            assert on_call_at(sched, probe) == before
