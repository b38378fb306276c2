"""Per-destination throttles of outgoing messages: at most N deliveries per period.

A throttled destination (by default each SMS or voice number: one message a minute) gets no
burst of messages: a due message waits until the window allows, and the messages due for one
destination at once go out as ONE delivery listing them all ("3 alerts: …"). Pure decisions
only; the outbox service keeps the delivery times and the sender acts on the decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")
# The short units are those of integrations' rate_limit (N/s, N/m, N/h).
_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
OFF = frozenset({"off", "none"})


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most `limit` deliveries to one destination within any `period`."""

    limit: int
    period: timedelta

    def __str__(self) -> str:
        return f"{self.limit}/{_unit_name(self.period)}"


DEFAULTS: Mapping[str, Throttle] = {
    "sms": Throttle(1, timedelta(minutes=1)),
    "voice": Throttle(1, timedelta(minutes=1)),
}


def parse_throttle(text: str) -> Throttle | None:
    """Parse "1/minute" (or 1/m, 10/h, 5/s …); "off" means no throttle. ValueError if bad."""
    cleaned = text.strip().lower()
    if cleaned in OFF:
        return None
    hit = _RATE.fullmatch(cleaned)
    unit = hit.group(2) if hit else ""
    if unit not in _UNITS and len(unit) > 2 and unit.endswith("s"):
        unit = unit[:-1]  # minutes, hours
    if not hit or unit not in _UNITS:
        raise ValueError(
            f"invalid throttle {text!r}: use N/s, N/m or N/h (or N/minute …), such as 1/minute, "
            "or off"
        )
    limit = int(hit.group(1))
    if limit < 1:
        raise ValueError(f"throttle {text!r} must allow at least one message")
    return Throttle(limit, timedelta(seconds=_UNITS[unit]))


def channel_throttles(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Throttle]:
    """Return the throttle of each channel: its `throttle` setting, else the default.

    An unreadable setting keeps the default (the config check reports it at apply time); a
    page must not go out unthrottled, nor be held back, because of a typo.
    """
    out = dict(DEFAULTS)
    for channel, values in settings.items():
        raw = values.get("throttle")
        if raw is None or raw == "":
            continue
        try:
            parsed = parse_throttle(str(raw))
        except ValueError:
            continue
        if parsed is None:
            out.pop(channel, None)
        else:
            out[channel] = parsed
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the messages due for one throttled destination now.

    deliveries: how many go out now (0: all wait until `wait_until`); bundle: whether they go
    out as one delivery listing them all.
    """

    deliveries: int
    bundle: bool = False
    wait_until: datetime | None = None


def in_window(sent: Sequence[datetime], throttle: Throttle, now: datetime) -> list[datetime]:
    """Return the delivery times that still count against the throttle at `now`, oldest first."""
    start = now - throttle.period
    # No upper bound: a time a little ahead (another engine's clock) still counts.
    return sorted(t for t in sent if t > start)


def decide(sent: Sequence[datetime], throttle: Throttle, now: datetime, due: int) -> Decision:
    """Decide for `due` messages to one destination, given its recent delivery times."""
    if due < 1:
        return Decision(0)
    recent = in_window(sent, throttle, now)
    free = throttle.limit - len(recent)
    if free <= 0:
        # The window allows one more when the oldest delivery that fills it leaves it.
        return Decision(0, wait_until=recent[-throttle.limit] + throttle.period)
    if due <= free:
        return Decision(due)
    return Decision(1, bundle=True)


def record(
    sent: Sequence[datetime], throttle: Throttle, now: datetime, count: int
) -> list[datetime]:
    """Return the delivery times to keep after `count` deliveries at `now` (the window only)."""
    return [*in_window(sent, throttle, now), *([now] * count)][-max(throttle.limit, 1) :]


def _unit_name(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    for name in ("day", "hour", "minute", "second"):
        if seconds == _UNITS[name]:
            return name
    return f"{seconds}s"


def bundle_text(items: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """Return the title and text of one delivery listing several messages (title, text)."""
    if len(items) == 1:
        return items[0]
    title = f"{len(items)} alerts: " + "; ".join(t for t, _ in items)
    body = "\n\n".join(f"{n}. {t}\n{b}".rstrip() for n, (t, b) in enumerate(items, 1))
    return title, body
