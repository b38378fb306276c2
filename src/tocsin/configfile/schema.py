"""The shape of a configuration file: one pydantic model per section, unknown keys forbidden.

Adding a section (integrations, routes, schedules …) means one spec model here, one field on
ConfigDocument, and one Section in sections.py.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeGuard, get_args

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

from tocsin.configfile.comm_schema import (
    AudienceSpec,
    CommunicationRuleSpec,
    MessageTemplateSpec,
)
from tocsin.configfile.oncall_schema import (
    ChannelsSpec,
    EscalationPolicySpec,
    ScheduleSpec,
    ServiceSpec,
    UserSpec,
)
from tocsin.configfile.types import (
    Duration,
    Id,
    IntegrationKey,
    Label,
    Name,
    RoleName,
    SeverityName,
    Spec,
    Text,
    Timestamp,
    to_duration,
    to_timestamp,
)
from tocsin.configfile.webhook_schema import WebhookSpec
from tocsin.core.alerts import DeclareRule, parse_matchers
from tocsin.ingest.generic import compile_mapping
from tocsin.services.alerting_config import parse_rate_limit


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


class ChecklistSpec(Spec):
    key_field = "severity"
    noun = "checklist"

    severity: SeverityName
    items: Annotated[list[Text], Field(min_length=1)]


# --- alerting: integrations, routes, grouping, heartbeats, silences, maintenance, inhibition ---


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
    return DeclareRule(count, None if within is None else to_duration(within))


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
        starts, ends = to_timestamp(entry.get("starts_at")), to_timestamp(entry.get("ends_at"))
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
    schedules: list[ScheduleSpec] | None = None
    escalation_policies: list[EscalationPolicySpec] | None = None
    services: list[ServiceSpec] | None = None
    checklists: list[ChecklistSpec] | None = None
    integrations: list[IntegrationSpec] | None = None
    routes: list[RouteSpec] | None = None
    grouping: list[GroupingSpec] | None = None
    heartbeats: list[HeartbeatSpec] | None = None
    silences: list[SilenceSpec] | None = None
    maintenance_windows: list[MaintenanceWindowSpec] | None = None
    inhibit_rules: list[InhibitRuleSpec] | None = None
    channels: ChannelsSpec | None = None
    webhooks: list[WebhookSpec] | None = None
    audiences: list[AudienceSpec] | None = None
    communication: list[CommunicationRuleSpec] | None = None
    message_templates: list[MessageTemplateSpec] | None = None

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


class ChannelSpec(Spec):
    """One entry of the `channels` mapping as the apply engine sees it: a name and settings."""

    key_field = "name"
    noun = "channel"

    name: str
    settings: dict[str, Any]


def section_spec(section: str) -> type[Spec]:
    """Return the entry model of a section, read from ConfigDocument's annotation."""
    annotation = ConfigDocument.model_fields[section].annotation
    if annotation is ChannelsSpec or section == "channels":
        return ChannelSpec
    list_type = next(arg for arg in get_args(annotation) if arg is not type(None))
    (spec,) = get_args(list_type)
    assert isinstance(spec, type)
    assert issubclass(spec, Spec)
    return spec
