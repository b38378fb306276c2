"""The shape of a configuration file: one pydantic model per section, unknown keys forbidden.

Adding a section (integrations, routes, schedules …) means one spec model here, one field on
ConfigDocument, and one Section in sections.py.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
)

from tocsin.core.durations import parse_duration

# Keys end up in URLs and references, so no spaces or slashes.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise ValueError(
            f"invalid key {value!r}: use letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return value


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        # YAML reads `15` as a number and `15:00` as sexagesimal 900; neither says its unit.
        raise ValueError(f"expected a duration such as 15m, 1h or 1d, got {value!r}")
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise ValueError(f"duration {value!r} must be longer than zero")
    return delta


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return value


# Lengths mirror the columns: PostgreSQL would reject a longer value halfway through an apply.
SeverityName = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_key)]
RoleName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_key)]
Id = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_key)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
Text = Annotated[str, Field(min_length=1)]


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


class SeveritySpec(Spec):
    key_field = "name"
    noun = "severity"
    # resolve_severity matches names case-insensitively, so P1 and p1 would be ambiguous.
    keys_ignore_case = True

    name: SeverityName
    label: Label
    description: str = ""
    respond_within: Duration | None = None
    update_every: Duration | None = None
    pages: bool = False


class IncidentRoleSpec(Spec):
    key_field = "name"
    noun = "incident role"

    name: RoleName
    label: Label
    description: str = ""
    required: bool = False


class UserSpec(Spec):
    noun = "user"

    # contact_methods and notification_rules arrive with later issues; until then they are
    # unknown keys, reported as such.
    id: Id
    name: Name
    email: Annotated[str, Field(max_length=320), AfterValidator(_email)]
    role: Literal["admin", "responder", "viewer"] = "responder"
    time_zone: Annotated[str, Field(max_length=64), AfterValidator(_time_zone)] | None = None


class TeamSpec(Spec):
    noun = "team"

    id: Id
    name: Name
    description: str = ""
    members: list[Id] = Field(default_factory=list)

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Report a member listed twice (the order of members is their position)."""
        members = entry.get("members")
        if not isinstance(members, list):
            return []
        seen: set[object] = set()
        out = []
        for index, member in enumerate(members):
            if isinstance(member, str) and member in seen:
                out.append((f"members[{index}]", f"user '{member}' is listed twice"))
            seen.add(member)
        return out


class ServiceSpec(Spec):
    noun = "service"

    id: Id
    name: Name
    description: str = ""
    team: Id | None = None


class ChecklistSpec(Spec):
    key_field = "severity"
    noun = "checklist"

    severity: SeverityName
    items: Annotated[list[Text], Field(min_length=1)]


class ConfigDocument(BaseModel):
    """A parsed configuration file; a section left out of the file is None and left alone."""

    model_config = ConfigDict(extra="forbid")

    severities: list[SeveritySpec] | None = None
    incident_roles: list[IncidentRoleSpec] | None = None
    users: list[UserSpec] | None = None
    teams: list[TeamSpec] | None = None
    services: list[ServiceSpec] | None = None
    checklists: list[ChecklistSpec] | None = None

    _lines: dict[str, int] = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr(default="<config>")

    @field_validator("*", mode="before")
    @classmethod
    def _present_means_a_list(cls, value: Any) -> Any:
        # `users:` with nothing after it is more often an accident than a wish to prune all.
        if value is None:
            raise ValueError("section is empty; write [] to declare it with no entries")
        return value

    @property
    def source(self) -> str:
        """Return where the document came from (a file name, or <config>)."""
        return self._source

    def present_sections(self) -> list[str]:
        """Return the sections the file declares, in schema order."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]

    def line_of(self, path: str) -> int | None:
        """Return the line of `path` (e.g. services[1].team), or of its nearest ancestor."""
        return line_of(self._lines, path)

    def with_lines(self, lines: dict[str, int], source: str) -> ConfigDocument:
        """Attach the YAML line map so later errors (cross-references) can name lines."""
        self._lines = dict(lines)
        self._source = source
        return self


def line_of(lines: dict[str, int], path: str) -> int | None:
    """Return the line of `path`, or of its nearest ancestor (a missing key has no line)."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


def section_spec(section: str) -> type[Spec]:
    """Return the entry model of a section, read from ConfigDocument's annotation."""
    annotation = ConfigDocument.model_fields[section].annotation
    list_type = next(arg for arg in get_args(annotation) if arg is not type(None))
    (spec,) = get_args(list_type)
    assert isinstance(spec, type)
    assert issubclass(spec, Spec)
    return spec
