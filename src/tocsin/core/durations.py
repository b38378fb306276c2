"""Human durations such as 15m, 1h, 1d, 1h30m, 90s."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([wdhms])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """Parse a compact duration; raise ValueError naming the accepted form."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or not re.fullmatch(r"(\d+[wdhms])+", cleaned):
        raise ValueError(f"invalid duration {text!r}: use forms like 30s, 15m, 1h, 1d, 1h30m")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned)))


def format_duration(delta: timedelta) -> str:
    """Format a duration in the same compact form parse_duration reads."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)
