"""Field types shared by every section's spec: keys, names, durations, times, the Spec base."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from tocsin.core.durations import parse_duration

# Keys end up in URLs and references, so no spaces or slashes.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def check_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise ValueError(
            f"invalid key {value!r}: use letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return value


def to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        # YAML reads `15` as a number and `15:00` as sexagesimal 900; neither says its unit.
        raise ValueError(f"expected a duration such as 15m, 1h or 1d, got {value!r}")
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise ValueError(f"duration {value!r} must be longer than zero")
    return delta


def check_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return value


# Lengths mirror the columns: PostgreSQL would reject a longer value halfway through an apply.
SeverityName = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(check_key)]
RoleName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_key)]
Id = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_key)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Duration = Annotated[timedelta, BeforeValidator(to_duration)]
Text = Annotated[str, Field(min_length=1)]
IntegrationKey = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_key)]


class Spec(BaseModel):
    """Base of every section entry: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # What names an entry within its section, and what to call one in messages.
    key_field: ClassVar[str] = "id"
    noun: ClassVar[str] = "entry"
    keys_ignore_case: ClassVar[bool] = False

    def config_key(self) -> str:
        """Return the value that identifies this entry within its section."""
        value = getattr(self, self.key_field)
        assert isinstance(value, str)
        return value

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Return (sub-path, message) for mistakes in a raw entry that need a precise path.

        It reads the raw mapping so these are found even when the entry fails validation.
        """
        return []


def to_timestamp(value: object) -> datetime:
    # Unquoted, YAML already reads 2026-01-01T00:00:00Z as a datetime; quoted, it is text.
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if not isinstance(moment, datetime):
        shown = repr(value) if isinstance(value, str) else str(value)
        raise ValueError(f"expected a time such as 2026-01-01T09:00:00Z, got {shown}")
    if moment.tzinfo is None:
        raise ValueError(f"time {value!s} needs a zone: end it with Z or an offset like +02:00")
    return moment.astimezone(UTC)


Timestamp = Annotated[datetime, BeforeValidator(to_timestamp)]
