"""Specs of the on-call sections: users with contact methods and notification rules, services
with their escalation policy, schedules, escalation policies and outgoing channels."""

from __future__ import annotations

import re
from datetime import date, timedelta
from email.utils import parseaddr
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
from tocsin.core.throttle import parse_throttle
from tocsin.services.contact_methods import TARGET_FIELDS

Email = Annotated[str, Field(max_length=320), AfterValidator(check_email)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(check_time_zone)]
_TARGET = re.compile(r"(user|schedule|team):([A-Za-z0-9][A-Za-z0-9._-]*)")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_MEMBER = re.compile(r"[UW][A-Z0-9]{2,}")
_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
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


def _slack_member(value: str) -> str:
    if not _MEMBER.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slack member id (such as U024BE7LH)")
    return value


def _ntfy_topic(value: str) -> str:
    if not _TOPIC.fullmatch(value) and urlsplit(value).scheme not in ("http", "https"):
        raise ValueError(f"{value!r} is not an ntfy topic (letters, digits, - and _) or topic URL")
    return value


def _phone(value: str) -> str:
    if not _E164.fullmatch(value):
        raise ValueError(f"{value!r} is not a phone number in E.164 form, such as +14155550100")
    return value


def _sender(value: str) -> str:
    address = parseaddr(value)[1]
    if "\n" in value or "\r" in value or not address or not _ADDRESS.fullmatch(address):
        raise ValueError(
            f'{value!r} is not a sender address (write a@example.com or "Name <a@example.com>")'
        )
    return value


Phone = Annotated[str, Field(max_length=16), AfterValidator(_phone)]
Sender = Annotated[str, Field(max_length=320), AfterValidator(_sender)]
SlackMember = Annotated[str, Field(max_length=32), AfterValidator(_slack_member)]
NtfyTopic = Annotated[str, Field(max_length=2048), AfterValidator(_ntfy_topic)]


def split_target(target: str) -> tuple[str, str]:
    """Return (kind, id) of a target such as schedule:primary."""
    kind, _, key = target.partition(":")
    return kind, key


# --- people ---


class ContactMethodSpec(Spec):
    noun = "contact method"

    id: Id
    type: Literal["email", "webhook", "sms", "voice", "slack", "ntfy"]
    address: Email | None = None
    url: Url | None = None
    number: Phone | None = None
    member: SlackMember | None = None
    topic: NtfyTopic | None = None
    name: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _target_fits_type(self) -> ContactMethodSpec:
        wanted = TARGET_FIELDS[self.type]
        if getattr(self, wanted) is None:
            raise ValueError(f"a {self.type} contact method needs `{wanted}`")
        for other in sorted(set(TARGET_FIELDS.values()) - {wanted}):
            if getattr(self, other) is not None:
                raise ValueError(f"a {self.type} contact method takes `{wanted}`, not `{other}`")
        return self

    def target(self) -> str:
        """Return the address, URL, number, member id or topic, whichever the type uses."""
        value = getattr(self, TARGET_FIELDS[self.type])
        assert isinstance(value, str)
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


def _throttle(value: str) -> str:
    parse_throttle(value)  # the outbox sender's own reading, so apply rejects what it would skip
    return value


# At most N messages per period to one destination ("1/minute", "10/h", or "off"); the outbox
# sender waits, and bundles what piles up, when a destination is over it.
Throttle = Annotated[
    str,
    # YAML reads a bare `off` as false.
    BeforeValidator(lambda value: "off" if value is False else value),
    Field(max_length=32),
    AfterValidator(_throttle),
]
Timeout = Annotated[float, Field(gt=0, le=300)]
Secret = Annotated[str, Field(min_length=1, max_length=1000)]


class ChannelSpecBase(Spec):
    throttle: Throttle | None = None


class EmailChannelSpec(ChannelSpecBase):
    host: Annotated[str, Field(min_length=1, max_length=255)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    from_: Annotated[Sender, Field(alias="from")]
    tls: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = None
    timeout: Timeout = 10.0
    verify: bool = True


class SlackChannelSpec(ChannelSpecBase):
    token: Secret | None = None
    api_url: Url = "https://slack.com/api/"
    signing_secret: Secret | None = None
    webhook_url: Url | None = None
    timeout: Timeout = 10.0

    @model_validator(mode="after")
    def _can_post(self) -> SlackChannelSpec:
        if self.token is None and self.webhook_url is None:
            raise ValueError(
                "set `token` (a bot token, for the Web API) or `webhook_url` (an incoming "
                "webhook), or both"
            )
        return self


def _account_sid(value: str) -> str:
    if not value.startswith("AC") or len(value) < 3 or not value.isalnum():
        raise ValueError(f"{value!r} is not a Twilio account SID (AC, then letters and digits)")
    return value


class TwilioSpec(Spec):
    """The Twilio account behind the sms and voice channels."""

    account_sid: Annotated[str, Field(max_length=64), AfterValidator(_account_sid)]
    auth_token: Secret
    from_: Annotated[Phone, Field(alias="from")]
    api_url: Url = "https://api.twilio.com"
    timeout: Timeout = 10.0


class NtfyChannelSpec(ChannelSpecBase):
    url: Url = "https://ntfy.sh"
    token: Secret | None = None
    timeout: Timeout = 10.0


class WebhookChannelSpec(ChannelSpecBase):
    """Teams, Mattermost and generic webhooks: the URL is each message's destination."""

    timeout: Timeout = 10.0


class MattermostChannelSpec(WebhookChannelSpec):
    username: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class ChannelsSpec(Spec):
    email: EmailChannelSpec | None = None
    slack: SlackChannelSpec | None = None
    teams: WebhookChannelSpec | None = None
    mattermost: MattermostChannelSpec | None = None
    webhook: WebhookChannelSpec | None = None
    twilio: TwilioSpec | None = None
    # sms and voice send through `twilio`; their own entries hold only the throttle.
    sms: ChannelSpecBase | None = None
    voice: ChannelSpecBase | None = None
    ntfy: NtfyChannelSpec | None = None
