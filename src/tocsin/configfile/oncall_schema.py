"""Specs of the on-call sections: users with contact methods and notification rules, services
with their escalation policy, schedules, escalation policies and outgoing channels."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from tocsin.configfile.types import (
    Duration,
    Id,
    Name,
    SeverityName,
    Spec,
    check_email,
    check_time_zone,
)
from tocsin.core.durations import parse_duration

Email = Annotated[str, Field(max_length=320), AfterValidator(check_email)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(check_time_zone)]
_TARGET = re.compile(r"(user|schedule|team):([A-Za-z0-9][A-Za-z0-9._-]*)")
TARGET_KINDS = {"user": "users", "schedule": "schedules", "team": "teams"}


def to_delay(value: object) -> timedelta:
    """Read a delay that may be zero (`0m`: at once)."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a delay such as 0m, 5m or 1h, got {value!r}")
    delta = parse_duration(value)
    if delta < timedelta(0):
        raise ValueError(f"delay {value!r} must not be negative")
    return delta


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _target(value: str) -> str:
    if not _TARGET.fullmatch(value):
        raise ValueError(f"invalid target {value!r}: write user:ID, schedule:ID or team:ID")
    return value


Delay = Annotated[timedelta, BeforeValidator(to_delay)]
Url = Annotated[str, Field(max_length=2048), AfterValidator(_url)]
Target = Annotated[str, Field(max_length=80), AfterValidator(_target)]


def split_target(target: str) -> tuple[str, str]:
    """Return (kind, id) of a target such as schedule:primary."""
    kind, _, key = target.partition(":")
    return kind, key


# --- people ---


class ContactMethodSpec(Spec):
    noun = "contact method"

    id: Id
    type: Literal["email", "webhook"]
    address: Email | None = None
    url: Url | None = None
    name: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _target_fits_type(self) -> ContactMethodSpec:
        wanted = {"email": "address", "webhook": "url"}[self.type]
        if getattr(self, wanted) is None:
            raise ValueError(f"a {self.type} contact method needs `{wanted}`")
        other = "url" if wanted == "address" else "address"
        if getattr(self, other) is not None:
            raise ValueError(f"a {self.type} contact method takes `{wanted}`, not `{other}`")
        return self

    def target(self) -> str:
        """Return the address or URL, whichever the type uses."""
        value = self.address if self.type == "email" else self.url
        assert value is not None
        return value


class NotificationRuleSpec(Spec):
    after: Delay
    via: Id


class NotificationRulesSpec(Spec):
    high: list[NotificationRuleSpec] = Field(default_factory=list)
    low: list[NotificationRuleSpec] = Field(default_factory=list)


class UserSpec(Spec):
    noun = "user"

    id: Id
    name: Name
    email: Email
    role: Literal["admin", "responder", "viewer"] = "responder"
    time_zone: TimeZone | None = None
    contact_methods: list[ContactMethodSpec] = Field(default_factory=list)
    # None leaves the rules as they are (people may keep their own through the API).
    notification_rules: NotificationRulesSpec | None = None

    @model_validator(mode="after")
    def _rules_use_own_methods(self) -> UserSpec:
        methods = {method.id for method in self.contact_methods}
        rules = self.notification_rules
        for urgency, listed in (("high", rules.high), ("low", rules.low)) if rules else ():
            for rule in listed:
                if rule.via not in methods:
                    raise ValueError(
                        f"notification_rules.{urgency}: via '{rule.via}' is not one of this "
                        f"user's contact_methods ({', '.join(sorted(methods)) or 'none'})"
                    )
        return self


class ServiceSpec(Spec):
    noun = "service"

    id: Id
    name: Name
    description: str = ""
    team: Id | None = None
    escalation_policy: Id | None = None
    # A different policy for some incident severities (e.g. P1 and P2 escalate differently).
    escalation_policy_by_severity: dict[SeverityName, Id] = Field(default_factory=dict)


# --- schedules ---


def _rotation(value: object) -> object:
    if not isinstance(value, dict):
        raise ValueError("expected {type, handoff, start} (e.g. {type: weekly, ...})")
    from tocsin.core.oncall.schedule import parse_rotation

    parse_rotation(_plain(value))
    return _plain(value)


def _restriction(value: object) -> object:
    if not isinstance(value, dict):
        raise ValueError("expected {days: [mon, …], from: HH:MM, to: HH:MM}")
    from tocsin.core.oncall.schedule import parse_restriction

    parse_restriction(_plain(value))
    return _plain(value)


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """Keep what YAML read as dates or timedeltas as the text the file wrote."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        out[key] = item.isoformat() if isinstance(item, date) else item
    return out


RotationMap = Annotated[dict[str, Any], BeforeValidator(_rotation)]
RestrictionMap = Annotated[dict[str, Any], BeforeValidator(_restriction)]


class LayerSpec(Spec):
    name: Annotated[str, Field(max_length=200)] = ""
    rotation: RotationMap | None = None
    users: list[Id] = Field(default_factory=list)
    restrict: list[RestrictionMap] = Field(default_factory=list)
    # An iCalendar text (e.g. exported from another calendar) instead of a rotation.
    calendar: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> LayerSpec:
        if (self.rotation is None) == (self.calendar is None):
            raise ValueError("a layer has either `rotation` (with `users`) or `calendar`")
        if self.rotation is not None and not self.users:
            raise ValueError("a rotation needs `users`")
        return self


class ScheduleSpec(Spec):
    noun = "schedule"

    id: Id
    name: Annotated[str, Field(max_length=200)] = ""
    description: str = ""
    time_zone: TimeZone
    layers: Annotated[list[LayerSpec], Field(min_length=1)]


# --- escalation policies ---


class EscalationStepSpec(Spec):
    after: Delay
    notify: Annotated[list[Target], Field(min_length=1)]
    # Page one of the targets per escalation, in turn, instead of all of them.
    round_robin: bool = False


class SlaBreachSpec(Spec):
    notify: Annotated[list[Target], Field(min_length=1)]


class EscalationPolicySpec(Spec):
    noun = "escalation policy"

    id: Id
    name: Annotated[str, Field(max_length=200)] = ""
    description: str = ""
    repeat: Annotated[int, Field(ge=0, le=100)] = 0
    ack_timeout: Duration | None = None
    on_sla_breach: SlaBreachSpec | None = None
    steps: Annotated[list[EscalationStepSpec], Field(min_length=1, max_length=50)]

    @model_validator(mode="after")
    def _steps_in_time_order(self) -> EscalationPolicySpec:
        for index in range(1, len(self.steps)):
            if self.steps[index].after < self.steps[index - 1].after:
                raise ValueError(
                    f"steps[{index}].after comes before steps[{index - 1}].after; `after` is "
                    "counted from the start of the escalation, so steps go in time order"
                )
        return self


# --- outgoing channels ---


class EmailChannelSpec(Spec):
    host: Annotated[str, Field(min_length=1, max_length=255)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    from_: Annotated[Email, Field(alias="from")]
    tls: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = None
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    verify: bool = True


class ChannelsSpec(Spec):
    email: EmailChannelSpec | None = None
