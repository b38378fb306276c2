"""On-call schedules: layers of rotations, restrictions and overrides, and who is on call when.

A schedule is evaluated in three steps (every instant in UTC, every wall-clock time in the
schedule's ``time_zone``):

1. Each layer gives a set of users. A rotation layer gives the one user holding the current
   shift (see ``rotation.py`` for handoffs, DST and the shift index); a layer with an imported
   ``calendar`` gives every user with an event at that instant (rotation is then ignored); a
   layer with neither gives all its ``users`` at once. A layer with ``restrictions`` gives
   nobody outside the union of its restriction windows, which follow wall-clock time: a window
   on day D runs from D ``start`` to D ``end`` (or to D+1 ``end`` when ``end <= start``, so
   ``start == end`` is 24 hours), and only days listed in ``days`` open a window.
2. Layers later in the tuple win: the on-call set is that of the last layer with anybody on call
   at that instant; lower layers fill the gaps of higher ones. No layer with anybody is a gap.
3. Overrides active at the instant (``starts_at <= t < ends_at``) apply in tuple order: ``add``
   appends the user; ``remove`` drops them; ``replace`` with ``replaces=X`` swaps X for the user
   where X is on call (and does nothing otherwise); ``replace`` without ``replaces`` makes the
   user the only one on call.

The on-call tuple is ordered and free of duplicates: users of a layer in the order of the layer's
``users`` (then by id, for calendar users not listed there), then users added by overrides in
override order. ``shifts`` and ``gaps`` evaluate a window once and sweep its change points;
``on_call_at`` evaluates a single instant in O(layers + overrides). ``next_shifts`` clips the
current shift to ``now``; ``next_change`` compares on-call tuples.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from tocsin.core.oncall.ical import CalendarLayer, calendar_shifts
from tocsin.core.oncall.rotation import (
    Rotation,
    Shift,
    as_utc,
    local_to_utc,
    parse_clock,
    parse_rotation,
    rotation_shifts,
    shift_index_at,
    weekday_number,
    zone_info,
)

__all__ = [
    "Layer",
    "Override",
    "OverrideKind",
    "Restriction",
    "Rotation",
    "Schedule",
    "Shift",
    "gaps",
    "layer_shifts",
    "next_change",
    "next_shifts",
    "on_call_at",
    "parse_restriction",
    "parse_rotation",
    "shifts",
]

OverrideKind = Literal["add", "remove", "replace"]
_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)
_DAY_SETS = {
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "daily": frozenset(range(7)),
}
_DAY_RANGE = re.compile(r"([a-z]+)\s*-\s*([a-z]+)")

Segment = tuple[datetime, datetime, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Restriction:
    """A weekly window, in the schedule's zone, inside which a layer is on call."""

    days: frozenset[int]
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError(f"restriction days must be weekdays 0-6 (Monday=0), not {self.days}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("restriction times are local wall-clock times without a zone")


@dataclass(frozen=True, slots=True)
class Layer:
    """Users taking turns by a rotation (or an imported calendar), optionally restricted."""

    users: tuple[str, ...]
    rotation: Rotation | None = None
    restrictions: tuple[Restriction, ...] = ()
    calendar: CalendarLayer | None = None


@dataclass(frozen=True, slots=True)
class Override:
    """A temporary change on top of the layers: add, remove or replace a user."""

    starts_at: datetime
    ends_at: datetime
    kind: OverrideKind
    user: str
    replaces: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("add", "remove", "replace"):
            raise ValueError(f"override kind {self.kind!r} is not add, remove or replace")
        if as_utc(self.starts_at) >= as_utc(self.ends_at):
            raise ValueError("an override must end after it starts")
        if self.replaces is not None and self.kind != "replace":
            raise ValueError("only a replace override names whom it replaces")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Layers (later ones win) and overrides, evaluated in one IANA time zone."""

    id: str
    time_zone: str
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()

    def __post_init__(self) -> None:
        zone_info(self.time_zone)


def _parse_days(value: object) -> frozenset[int]:
    items: Iterable[object]
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _DAY_SETS:
            return _DAY_SETS[key]
        items = [part for part in re.split(r"[,\s]+", key) if part] if "," in key else [key]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        raise ValueError(f"restriction days {value!r}: use a list such as [mon, tue] or 'weekdays'")
    days: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
        elif isinstance(item, str) and (match := _DAY_RANGE.fullmatch(item.strip().lower())):
            first, last = weekday_number(match[1]), weekday_number(match[2])
            days.update((first + step) % 7 for step in range((last - first) % 7 + 1))
        elif isinstance(item, str):
            days.update(_DAY_SETS.get(item.strip().lower()) or {weekday_number(item)})
        else:
            raise ValueError(f"restriction day {item!r} is not a weekday (mon … sun)")
    if not days:
        raise ValueError("restriction days are empty")
    return frozenset(days)


def _parse_time(value: object, key: str, *, allow_24: bool) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1440:
        # YAML 1.1 reads an unquoted 17:00 as the sexagesimal number 1020 (minutes).
        return time(0) if value == 1440 else time(value // 60, value % 60)
    if not isinstance(value, str):
        raise ValueError(f"restriction {key} {value!r} is not a time (HH:MM)")
    try:
        return parse_clock(value, allow_24=allow_24)
    except ValueError as error:
        raise ValueError(f"restriction {key}: {error}") from None


def parse_restriction(spec: Mapping[str, Any]) -> Restriction:
    """Build a Restriction from {days: [mon, …] | weekdays | weekends | daily, from, to}."""
    unknown = set(spec) - {"days", "from", "to"}
    if unknown:
        raise ValueError(
            f"restriction: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "expected days, from, to"
        )
    for key in ("from", "to"):
        if key not in spec:
            raise ValueError(f"restriction: {key} is required, e.g. {{from: '09:00', to: '17:00'}}")
    return Restriction(
        days=_parse_days(spec.get("days", "daily")),
        start=_parse_time(spec["from"], "from", allow_24=False),
        end=_parse_time(spec["to"], "to", allow_24=True),
    )


# --- evaluation at one instant ---


def _window(restriction: Restriction, zone: ZoneInfo, day: date) -> tuple[datetime, datetime]:
    end_day = day + _DAY if restriction.end <= restriction.start else day
    return local_to_utc(day, restriction.start, zone), local_to_utc(end_day, restriction.end, zone)


def _allowed_at(restrictions: tuple[Restriction, ...], zone: ZoneInfo, at: datetime) -> bool:
    today = at.astimezone(zone).date()
    for day in (today - _DAY, today):
        weekday = day.weekday()
        for restriction in restrictions:
            if weekday in restriction.days:
                begins, ends = _window(restriction, zone, day)
                if begins <= at < ends:
                    return True
    return False


def _ordered(layer: Layer, users: Iterable[str]) -> tuple[str, ...]:
    position = {user: index for index, user in reversed(list(enumerate(layer.users)))}
    return tuple(sorted(set(users), key=lambda user: (position.get(user, len(position)), user)))


def _layer_at(layer: Layer, zone: ZoneInfo, at: datetime) -> tuple[str, ...]:
    if layer.restrictions and not _allowed_at(layer.restrictions, zone, at):
        return ()
    if layer.calendar is not None:
        return _ordered(layer, (s.user for s in calendar_shifts(layer.calendar, at, at + _TICK)))
    if not layer.users:
        return ()
    if layer.rotation is None:
        return _ordered(layer, layer.users)
    k = shift_index_at(layer.rotation, zone, at)
    return () if k < 0 else (layer.users[k % len(layer.users)],)


def _apply_overrides(users: tuple[str, ...], overrides: Iterable[Override]) -> tuple[str, ...]:
    current = list(users)
    for override in overrides:
        if override.kind == "add":
            if override.user not in current:
                current.append(override.user)
        elif override.kind == "remove":
            current = [user for user in current if user != override.user]
        elif override.replaces is None:
            current = [override.user]
        elif override.replaces in current:
            if override.user in current:
                current.remove(override.replaces)
            else:
                current[current.index(override.replaces)] = override.user
    return tuple(current)


def on_call_at(schedule: Schedule, at: datetime) -> tuple[str, ...]:
    """Return the user ids on call at an instant, after layers and overrides."""
    at = as_utc(at)
    zone = zone_info(schedule.time_zone)
    base: tuple[str, ...] = ()
    for layer in reversed(schedule.layers):
        base = _layer_at(layer, zone, at)
        if base:
            break
    active = (o for o in schedule.overrides if o.starts_at <= at < o.ends_at)
    return _apply_overrides(base, active)


# --- evaluation over a window ---


def _restriction_windows(
    restrictions: tuple[Restriction, ...], zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The union of restriction windows within [start, end), sorted and merged."""
    raw: list[tuple[datetime, datetime]] = []
    day, last = start.astimezone(zone).date() - _DAY, end.astimezone(zone).date()
    while day <= last:
        weekday = day.weekday()
        for restriction in restrictions:
            if weekday in restriction.days:
                begins, ends = _window(restriction, zone, day)
                begins, ends = max(begins, start), min(ends, end)
                if begins < ends:
                    raw.append((begins, ends))
        day += _DAY
    raw.sort()
    merged: list[tuple[datetime, datetime]] = []
    for begins, ends in raw:
        if merged and begins <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
        else:
            merged.append((begins, ends))
    return merged


def _intersect(pieces: list[Shift], windows: list[tuple[datetime, datetime]]) -> list[Shift]:
    ends = [window_end for _, window_end in windows]
    out: list[Shift] = []
    for piece in pieces:
        index = bisect_right(ends, piece.starts_at)
        while index < len(windows) and windows[index][0] < piece.ends_at:
            begins, finishes = windows[index]
            out.append(
                Shift(piece.user, max(begins, piece.starts_at), min(finishes, piece.ends_at))
            )
            index += 1
    return out


def _layer_pieces(layer: Layer, zone: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
    if layer.calendar is not None:
        pieces = calendar_shifts(layer.calendar, start, end)
    elif not layer.users:
        return []
    elif layer.rotation is None:
        pieces = [Shift(user, start, end) for user in _ordered(layer, layer.users)]
    else:
        pieces = rotation_shifts(layer.rotation, layer.users, zone, start, end)
    if layer.restrictions and pieces:
        pieces = _intersect(pieces, _restriction_windows(layer.restrictions, zone, start, end))
    position = {user: index for index, user in reversed(list(enumerate(layer.users)))}
    pieces.sort(key=lambda s: (s.starts_at, position.get(s.user, len(position)), s.user))
    return pieces


def _window_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    return as_utc(start), as_utc(end)


def _timeline(schedule: Schedule, start: datetime, end: datetime) -> list[Segment]:
    """Consecutive segments covering [start, end), each with its constant on-call tuple."""
    if start >= end:
        return []
    zone = zone_info(schedule.time_zone)
    # (layer index, user, +1 opens / -1 closes) at each change point.
    events: defaultdict[datetime, list[tuple[int, str, int]]] = defaultdict(list)
    events[start] = []
    for index, layer in enumerate(schedule.layers):
        for piece in _layer_pieces(layer, zone, start, end):
            events[piece.starts_at].append((index, piece.user, 1))
            events[piece.ends_at].append((index, piece.user, -1))
    overrides = [o for o in schedule.overrides if o.starts_at < end and o.ends_at > start]
    for override in overrides:
        events.setdefault(max(as_utc(override.starts_at), start), [])
        events.setdefault(min(as_utc(override.ends_at), end), [])
    active: list[dict[str, int]] = [{} for _ in schedule.layers]
    times = sorted(t for t in events if t < end)
    segments: list[Segment] = []
    for position, at in enumerate(times):
        for index, user, delta in events[at]:
            count = active[index].get(user, 0) + delta
            if count:
                active[index][user] = count
            else:
                del active[index][user]
        base: tuple[str, ...] = ()
        for index in reversed(range(len(schedule.layers))):
            if active[index]:
                base = _ordered(schedule.layers[index], active[index])
                break
        users = _apply_overrides(base, (o for o in overrides if o.starts_at <= at < o.ends_at))
        until = times[position + 1] if position + 1 < len(times) else end
        if segments and segments[-1][2] == users:
            segments[-1] = (segments[-1][0], until, users)
        else:
            segments.append((at, until, users))
    return segments


def _segments_to_shifts(segments: list[Segment], end: datetime) -> list[Shift]:
    open_since: dict[str, tuple[datetime, int]] = {}
    out: list[tuple[int, Shift]] = []
    sequence = 0
    for begins, _, users in segments:
        for user in [u for u in open_since if u not in users]:
            since, seq = open_since.pop(user)
            out.append((seq, Shift(user, since, begins)))
        for user in users:
            if user not in open_since:
                open_since[user] = (begins, sequence)
                sequence += 1
    out.extend((seq, Shift(user, since, end)) for user, (since, seq) in open_since.items())
    out.sort(key=lambda item: (item[1].starts_at, item[0]))
    return [shift for _, shift in out]


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """Return the final on-call shifts in [start, end): per user, merged, clipped, sorted."""
    start, end = _window_bounds(start, end)
    return _segments_to_shifts(_timeline(schedule, start, end), end)


def layer_shifts(
    schedule: Schedule, layer_index: int, start: datetime, end: datetime
) -> list[Shift]:
    """Return one layer's own shifts in [start, end), before layer priority and overrides."""
    start, end = _window_bounds(start, end)
    if start >= end:
        return []
    layer = schedule.layers[layer_index]
    return _layer_pieces(layer, zone_info(schedule.time_zone), start, end)


def gaps(schedule: Schedule, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Return the periods in [start, end) with nobody on call."""
    start, end = _window_bounds(start, end)
    return [(begins, ends) for begins, ends, users in _timeline(schedule, start, end) if not users]


def next_shifts(
    schedule: Schedule, now: datetime, count: int, horizon: timedelta = timedelta(days=366)
) -> list[Shift]:
    """Return the current shifts (clipped to now) and the upcoming ones, the first ``count``."""
    now = as_utc(now)
    if count <= 0:
        return []
    limit, span = now + horizon, timedelta(days=7)
    while True:
        until = min(now + span, limit)
        found = shifts(schedule, now, until)
        # A shift ending before the window's edge is final; one reaching it may go on.
        if until >= limit or (
            len(found) >= count and all(s.ends_at < until for s in found[:count])
        ):
            return found[:count]
        span *= 4


def next_change(
    schedule: Schedule, after: datetime, horizon: timedelta = timedelta(days=366)
) -> datetime | None:
    """Return the first instant after ``after`` where the on-call tuple differs, if any."""
    after = as_utc(after)
    limit, span = after + horizon, _DAY
    begins, current = after, on_call_at(schedule, after)
    while begins < limit:
        until = min(begins + span, limit)
        for at, _, users in _timeline(schedule, begins, until):
            if users != current and at > after:
                return at
        begins, span = until, span * 2
    return None
