"""The shape of a configuration file: one pydantic model per section, unknown keys forbidden.

Adding a section (integrations, routes, schedules …) means one spec model here, one field on
ConfigDocument, and one Section in sections.py.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeGuard, get_args

import jmespath  # type: ignore[import-untyped]
import jmespath.exceptions  # type: ignore[import-untyped]
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)

from tocsin.core.alerts import DeclareRule, parse_matchers
from tocsin.core.durations import parse_duration
from tocsin.ingest.generic import compile_mapping
from tocsin.services.alerting_config import parse_rate_limit

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
IntegrationKey = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_key)]


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


# --- alerting: integrations, routes, grouping, heartbeats, silences, maintenance, inhibition ---


def _timestamp(value: object) -> datetime:
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


def _rate_limit(value: str) -> str:
    parse_rate_limit(value)
    return value


def _declare(value: object) -> object:
    """Read `declare_incident`: true, false or {min_alerts: N, within: DURATION}."""
    if isinstance(value, bool | DeclareRule):
        return value
    if not isinstance(value, dict):
        raise ValueError(
            "expected true, false or {min_alerts: N, within: DURATION}, got "
            + ("nothing" if value is None else repr(value))
        )
    for key in value:
        if key not in ("min_alerts", "within"):
            raise ValueError(f"unknown key {key!r}; valid: min_alerts, within")
    count = value.get("min_alerts", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"min_alerts must be a whole number of at least 1, got {count!r}")
    within = value.get("within")
    return DeclareRule(count, None if within is None else _duration(within))


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
RateLimitText = Annotated[str, Field(max_length=32), AfterValidator(_rate_limit)]
Matchers = dict[str, Any]  # checked by matcher_problems(), which names the exact sub-path

# One parser for syntax checks only: rendering happens in the ingest pipeline.
_JINJA = SandboxedEnvironment()
MAPPING_KEYS = (
    "title",
    "dedup_key",
    "status",
    "severity",
    "source",
    "labels",
    "links",
    "details",
    "items",
)
# labels and details may also map names to expressions; details may be one template.
_GROUPS = frozenset({"labels", "details"})
_LIST_OPERATORS = frozenset({"in", "not_in"})
_NOT_A_CONDITION = "expected a value, a list of values or a mapping of operators (eq, regex, …)"


def template_problem(text: str) -> str | None:
    """Return why a Jinja2 template does not compile, or None."""
    try:
        _JINJA.parse(text)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message or exc}"
    return None


def jmespath_problem(expression: object) -> str | None:
    """Return why a JMESPath expression does not compile, or None."""
    if not isinstance(expression, str) or not expression.strip():
        return "expected an expression such as alerts[0].labels"
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        return f"JMESPath syntax error: {_jmespath_reason(exc)}"
    return None


def _jmespath_reason(exc: Exception) -> str:
    # The library's own messages span three lines (expression and caret); keep the gist.
    errors = jmespath.exceptions
    if isinstance(exc, errors.IncompleteExpressionError):
        return "incomplete expression"
    if isinstance(exc, errors.LexerError):
        return f"{exc.message} at column {exc.lexer_position}"
    if isinstance(exc, errors.ParseError) and not isinstance(exc, errors.ArityError):
        return f"{exc.msg} at column {exc.lex_position}"
    return str(exc).splitlines()[0]


def _expression_problems(path: str, value: object) -> list[tuple[str, str]]:
    """Check one expression: a template string or {jmespath: EXPRESSION}."""
    if isinstance(value, str):
        problem = template_problem(value)
    elif _is_jmespath(value):
        path, problem = f"{path}.jmespath", jmespath_problem(value["jmespath"])
    else:
        problem = "expected a template or {jmespath: EXPRESSION}"
    return [(path, problem)] if problem else []


def _is_jmespath(value: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and list(value) == ["jmespath"]


def _field_problems(key: str, value: object) -> list[tuple[str, str]]:
    """Check one mapping field the way tocsin.ingest.generic compiles it."""
    path = f"mapping.{key}"
    if value is None:
        return []
    if key == "items" and not _is_jmespath(value):
        return [(path, "expected {jmespath: EXPRESSION} giving the list of alerts")]
    if key in _GROUPS and isinstance(value, dict) and not _is_jmespath(value):
        return [
            p for name, item in value.items() for p in _expression_problems(f"{path}.{name}", item)
        ]
    if key == "labels" and isinstance(value, str):
        return [(path, "expected {jmespath: EXPRESSION} or a mapping of names to templates")]
    return _expression_problems(path, value)


def mapping_problems(mapping: dict[str, Any]) -> list[tuple[str, str]]:
    """Check a generic integration's mapping; paths are relative to the entry."""
    out: list[tuple[str, str]] = []
    for key, value in mapping.items():
        if key in MAPPING_KEYS:
            out.extend(_field_problems(key, value))
            continue
        close = difflib.get_close_matches(key, MAPPING_KEYS, n=1)
        message = (
            f"unknown key '{key}' (did you mean '{close[0]}'?)"
            if close
            else f"unknown key '{key}'; valid: {', '.join(MAPPING_KEYS)}"
        )
        out.append((f"mapping.{key}", message))
    if mapping.get("title") is None:
        out.append(("mapping.title", "required key is missing"))
    if not out:
        # What ingest will run must compile there too (it also knows JMESPath's functions).
        try:
            compile_mapping(mapping)
        except ValueError as exc:
            out.append(("mapping", f"does not compile: {exc}"))
    return out


def matcher_problems(matchers: object, field: str) -> list[tuple[str, str]]:
    """Check matchers as tocsin.core.alerts.parse_matchers reads them, one path per problem."""
    if not isinstance(matchers, dict):
        return []  # pydantic reports the wrong type
    out: list[tuple[str, str]] = []
    for name, condition in matchers.items():
        path = f"{field}.{name}"
        if isinstance(condition, dict):
            if not condition:
                out.append((path, "expected at least one operator"))
            for op, operand in condition.items():
                problem = _operand_problem(name, op, operand)
                if problem:
                    out.append((f"{path}.{op}", problem))
        elif isinstance(condition, list):
            if not all(_is_scalar(item) for item in condition):
                out.append((path, "expected a list of plain values"))
        elif not _is_scalar(condition):
            got = "nothing" if condition is None else repr(condition)
            out.append((path, f"{_NOT_A_CONDITION}, got {got}"))
    return out


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _operand_problem(name: str, op: str, operand: object) -> str | None:
    if op == "exists" and not isinstance(operand, bool):
        return "expected true or false"
    if op in _LIST_OPERATORS:
        if not isinstance(operand, list) or not all(_is_scalar(item) for item in operand):
            return "expected a list of plain values"
    elif op != "exists" and not _is_scalar(operand):
        return "expected a plain value (text or a number)"
    try:
        parse_matchers({name: {op: operand}})
    except ValueError as exc:
        return str(exc).removeprefix(f"{name}.{op}: ")
    return None


def _ends_after_start(entry: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        starts, ends = _timestamp(entry.get("starts_at")), _timestamp(entry.get("ends_at"))
    except ValueError:
        return []  # pydantic reports it
    if ends <= starts:
        return [("ends_at", "must be after starts_at")]
    return []


class IntegrationSpec(Spec):
    key_field = "key"
    noun = "integration"

    # The key is the secret in the webhook URL (or PagerDuty's routing_key).
    key: IntegrationKey
    type: Literal["alertmanager", "grafana", "pagerduty", "generic"]
    service: Id
    name: Annotated[str, Field(max_length=200)] = ""
    mapping: dict[str, Any] | None = None
    rate_limit: RateLimitText | None = None

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Require a mapping on generic integrations only, and check its templates."""
        kind, mapping = entry.get("type"), entry.get("mapping")
        if kind == "generic" and "mapping" not in entry:
            return [("mapping", "required for type generic (at least mapping.title)")]
        if kind != "generic" and "mapping" in entry and isinstance(kind, str):
            return [("mapping", f"only type generic takes a mapping, not type {kind}")]
        return mapping_problems(mapping) if isinstance(mapping, dict) else []


class _RouteBase(Spec):
    # Routes have no name: the position in the file is their identity and their order.
    key_field = ""
    noun = "route"

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Check the matchers."""
        return matcher_problems(entry.get("match"), "match")


# `continue` is a Python keyword, so the class statement cannot declare it; building the model
# keeps the field's name exactly as the file spells it (in errors and in export).
if TYPE_CHECKING:
    RouteSpec = _RouteBase
else:
    RouteSpec = create_model(
        "RouteSpec",
        __base__=_RouteBase,
        __module__=__name__,
        match=(Matchers, ...),
        **{"continue": (bool, False)},
        service=(Id | None, None),
        urgency=(Literal["high", "low"] | None, None),
        incident_severity=(SeverityName | None, None),
        declare_incident=(Annotated[bool | DeclareRule, BeforeValidator(_declare)], False),
    )


class GroupingSpec(Spec):
    key_field = "service"
    noun = "grouping rule"

    service: Id
    by: Annotated[list[Text], Field(min_length=1)] | None = None
    template: Text | None = None
    window: Duration | None = None

    @field_validator("template")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        problem = None if value is None else template_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _by_or_template(self) -> GroupingSpec:
        if (self.by is None) == (self.template is None):
            raise ValueError("set exactly one of by (label names) or template")
        return self


class HeartbeatSpec(Spec):
    key_field = "key"
    noun = "heartbeat"

    key: IntegrationKey
    service: Id
    interval: Duration
    name: Annotated[str, Field(max_length=200)] = ""


class SilenceSpec(Spec):
    key_field = ""
    noun = "silence"

    matchers: Annotated[Matchers, Field(min_length=1)]
    starts_at: Timestamp
    ends_at: Timestamp
    comment: str = ""

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Check the matchers and that the silence ends after it starts."""
        return matcher_problems(entry.get("matchers"), "matchers") + _ends_after_start(entry)


class MaintenanceWindowSpec(Spec):
    key_field = ""
    noun = "maintenance window"

    service: Id
    starts_at: Timestamp
    ends_at: Timestamp
    comment: str = ""

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Check that the window ends after it starts."""
        return _ends_after_start(entry)


class InhibitRuleSpec(Spec):
    key_field = ""
    noun = "inhibit rule"

    source_match: Matchers
    target_match: Matchers
    equal: list[Text] = Field(default_factory=list)

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Check both sets of matchers."""
        return matcher_problems(entry.get("source_match"), "source_match") + matcher_problems(
            entry.get("target_match"), "target_match"
        )


class ConfigDocument(BaseModel):
    """A parsed configuration file; a section left out of the file is None and left alone."""

    model_config = ConfigDict(extra="forbid")

    severities: list[SeveritySpec] | None = None
    incident_roles: list[IncidentRoleSpec] | None = None
    users: list[UserSpec] | None = None
    teams: list[TeamSpec] | None = None
    services: list[ServiceSpec] | None = None
    checklists: list[ChecklistSpec] | None = None
    integrations: list[IntegrationSpec] | None = None
    routes: list[RouteSpec] | None = None
    grouping: list[GroupingSpec] | None = None
    heartbeats: list[HeartbeatSpec] | None = None
    silences: list[SilenceSpec] | None = None
    maintenance_windows: list[MaintenanceWindowSpec] | None = None
    inhibit_rules: list[InhibitRuleSpec] | None = None

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
