"""Typed readers shared by the parsers: they record problems by field path instead of raising."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from tocsin.ingest.errors import PayloadError

MAX_DEDUP_KEY = 255
MAX_TITLE = 1024
MAX_SEVERITY = 32
MAX_NAME = 255
# A body with thousands of bad alerts should not produce a megabyte of error text.
MAX_ERRORS = 50


class Problems:
    """Collect every problem in a body, so the sender can fix them all in one go."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, path: str, message: str) -> None:
        """Record a problem at a field path (an empty path for the body itself)."""
        self.errors.append(f"{path}: {message}" if path else message)

    def raise_if_any(self, message: str) -> None:
        """Raise PayloadError with everything recorded so far, if anything was."""
        if not self.errors:
            return
        shown = self.errors[:MAX_ERRORS]
        if len(self.errors) > MAX_ERRORS:
            shown.append(f"… and {len(self.errors) - MAX_ERRORS} more errors")
        raise PayloadError(message, shown)


def join(path: str, key: object) -> str:
    """Return the path of a member, clipping absurd keys so messages stay readable."""
    name = clean(str(key))[:100]
    return f"{path}.{name}" if path else name


_TYPE_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int to Python, not to JSON
    ((int, float), "a number"),
    (str, "a string"),
    ((list, tuple), "a list"),
    (Mapping, "an object"),
)


def type_name(value: object) -> str:
    """Name a value's JSON type, for messages that never echo the value itself."""
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def clean(text: str) -> str:
    """Replace what no database can store: lone surrogates (from JSON \\ud800) and NUL."""
    if text.isascii() and "\x00" not in text:
        return text  # the common case, checked in C (isascii reads a flag CPython keeps)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16, a pair of surrogates becomes its character, and a lone one U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", "\ufffd")


def clip(text: str | None, limit: int) -> str | None:
    """Return text cut to its column's length; empty text is no text."""
    return text[:limit] if text else None


def clip_dedup_key(key: str) -> str:
    """Keep a dedup key within its column: a longer key is replaced by its SHA-256."""
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def scalar_text(value: object) -> str:
    """Return a JSON scalar as JSON writes it (true, 3, 2.5); raise ValueError for others."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # Python refuses to print integers of more than 4300 digits
            raise ValueError("number is too large") from None
    if isinstance(value, float):
        text = repr(value)
        return text.removesuffix(".0")
    raise ValueError(f"expected a string, got {type_name(value)}")


def get_object(value: object, path: str, problems: Problems) -> Mapping[str, Any] | None:
    """Return value if it is a JSON object, else record a problem."""
    if isinstance(value, Mapping):
        return value
    problems.add(path, f"expected an object, got {type_name(value)}")
    return None


def optional_text(obj: Mapping[str, Any], key: str, path: str, problems: Problems) -> str | None:
    """Return a string member (null and absent are None); other types are a problem."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return clean(value)
    problems.add(join(path, key), f"expected a string, got {type_name(value)}")
    return None


def string_map(value: object, path: str, problems: Problems) -> dict[str, str]:
    """Read labels or annotations: an object whose scalar values become strings.

    Null members are dropped, as Prometheus treats an empty label as an absent one.
    """
    if value is None:
        return {}
    obj = get_object(value, path, problems)
    if obj is None:
        return {}
    out: dict[str, str] = {}
    for key, item in obj.items():
        if not isinstance(key, str):
            problems.add(path, f"keys must be strings, got {type_name(key)}")
        elif item is not None:
            try:
                out[clean(key)] = scalar_text(item)
            except ValueError as exc:
                problems.add(join(path, key), str(exc))
    return out


def finite_number(value: object) -> float | None:
    """Return a JSON number as a float, or None for non-numbers and ints beyond float range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def number_problem(value: object) -> str:
    """Say why a value is not a usable number."""
    if type_name(value) == "a number":
        return "number is out of range"
    return f"expected a number, got {type_name(value)}"


def numeric_details(values: Mapping[str, float]) -> dict[str, float]:
    """Flatten named values to `value_<name>` (and `value` when there is one) for routes."""
    out = {f"value_{name}": number for name, number in values.items()}
    if len(values) == 1:
        out["value"] = next(iter(values.values()))
    return out


def safe_href(url: str | None) -> str | None:
    """Return an http(s) URL, or None: links are rendered, so javascript: and data: must go."""
    if not url:
        return None
    url = url.strip()
    return url if url.lower().startswith(("http://", "https://")) else None


_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII,
)


@lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime | None:
    """Parse an RFC 3339 / ISO 8601 time to UTC; Go's zero time (year 1) means no time.

    Fractions of any length are accepted (Go writes nanoseconds); a missing offset is UTC.
    """
    hit = _TIME.fullmatch(text.strip())
    if not hit:
        raise ValueError("expected an RFC 3339 time such as 2024-05-01T12:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in hit.group(1, 2, 3, 4, 5, 6))
    fraction, sign = hit.group(7) or "", hit.group(9)
    micro = int(fraction[:6].ljust(6, "0"))
    if (year, month, day, hour, minute, second, micro) == (1, 1, 1, 0, 0, 0, 0):
        return None
    try:
        zone = UTC
        if sign:
            offset = timedelta(hours=int(hit.group(10)), minutes=int(hit.group(11)))
            zone = timezone(-offset if sign == "-" else offset)
        at = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
        return at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("not a valid date and time") from None


def optional_time(
    obj: Mapping[str, Any], key: str, path: str, problems: Problems
) -> datetime | None:
    """Read an optional time member, recording a malformed one as a problem."""
    text = optional_text(obj, key, path, problems)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        problems.add(join(path, key), str(exc))
        return None
