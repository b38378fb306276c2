"""Specs of the communication sections: `audiences` (who can be told), `communication` (which
severities tell which audiences what) and `message_templates` (in which words)."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from tocsin.configfile.oncall_schema import Url
from tocsin.configfile.types import Id, SeverityName, Spec, check_email
from tocsin.core.communications import selector_key
from tocsin.services.stakeholder_templates import check_template

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SLACK_CHANNEL = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}")
# Besides role names, an incident-channel audience may invite everyone working the incident.
RESPONDERS = "responders"

AudienceType = Literal[
    "email", "slack", "webhook", "teams", "mattermost", "sms", "people", "statuspage"
]
MessageKind = Literal["initial", "update", "resolution"]


def _e164(value: str) -> str:
    if not _E164.fullmatch(value):
        raise ValueError(f"{value!r} is not an E.164 phone number such as +15551234567")
    return value


def _slack_channel(value: str) -> str:
    if not _SLACK_CHANNEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Slack channel name: write '#' and lowercase letters, digits, "
            "'-', '_' or '.'"
        )
    return value


Phone = Annotated[str, Field(max_length=16), AfterValidator(_e164)]
SlackChannel = Annotated[str, Field(max_length=81), AfterValidator(_slack_channel)]

# Which keys each type takes (besides id, type, name); the first group is required.
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "email": (("to",), ()),
    "slack": ((), ("channel", "create_incident_channel", "invite", "channel_name")),
    "webhook": (("url",), ("secret",)),
    "teams": (("url",), ()),
    "mattermost": (("url",), ()),
    "sms": (("to",), ()),
    "people": ((), ("users", "teams", "schedules")),
    "statuspage": ((), ()),
}
_SETTINGS = (
    "to", "channel", "create_incident_channel", "invite", "channel_name", "url", "secret",
    "users", "teams", "schedules",
)  # fmt: skip


class AudienceSpec(Spec):
    noun = "audience"

    id: Id
    type: AudienceType
    name: Annotated[str, Field(max_length=200)] = ""
    # email: addresses; sms: E.164 numbers (checked per type below).
    to: list[str] | None = None
    channel: SlackChannel | None = None
    create_incident_channel: bool | None = None
    invite: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    # The incident channel's name as a template (default: the incident's slug).
    channel_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    url: Url | None = None
    secret: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    users: list[Id] | None = None
    teams: list[Id] | None = None
    schedules: list[Id] | None = None

    @model_validator(mode="after")
    def _keys_fit_type(self) -> AudienceSpec:
        required, optional = _KEYS[self.type]
        for key in required:
            if getattr(self, key) is None:
                raise ValueError(f"a {self.type} audience needs `{key}`")
        allowed = set(required) | set(optional)
        extra = [k for k in _SETTINGS if k not in allowed and getattr(self, k) is not None]
        if extra:
            takes = ", ".join(f"`{k}`" for k in (*required, *optional)) or "nothing else"
            raise ValueError(f"a {self.type} audience takes {takes}, not `{extra[0]}`")
        if self.to is not None:
            if not self.to:
                raise ValueError("`to` needs at least one recipient")
            check = _e164 if self.type == "sms" else check_email
            for value in self.to:
                check(value)
        if self.type == "slack":
            self._check_slack()
        if self.type == "people" and not (self.users or self.teams or self.schedules):
            raise ValueError("a people audience needs `users`, `teams` or `schedules`")
        return self

    def _check_slack(self) -> None:
        own = bool(self.create_incident_channel)
        if own == (self.channel is not None):
            raise ValueError(
                'a slack audience takes either `channel: "#name"` or '
                "`create_incident_channel: true`"
            )
        if not own and (self.invite is not None or self.channel_name is not None):
            raise ValueError("`invite` and `channel_name` go with `create_incident_channel: true`")
        if self.channel_name is not None:
            problem = check_template(self.channel_name)
            if problem is not None:
                raise ValueError(f"channel_name: {problem}")

    def settings(self) -> dict[str, Any]:
        """Return the type-specific keys as the file writes them."""
        out: dict[str, Any] = {}
        for key in _SETTINGS:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, list) else value
        return out


Kinds = Annotated[list[MessageKind], Field(min_length=1)]


def _all_kinds() -> list[MessageKind]:
    return ["initial", "update", "resolution"]


class CommunicationRuleSpec(Spec):
    # Keyless like routes: the position is the identity, the file's list replaces the stored one.
    key_field = ""
    noun = "communication rule"

    severities: Annotated[list[SeverityName], Field(min_length=1)]
    audiences: Annotated[list[Id], Field(min_length=1)]
    messages: Kinds = Field(default_factory=_all_kinds)
    services: list[Id] = Field(default_factory=list)


class MessageTemplateSpec(Spec):
    # Named by what it is for ("update severity=P1"); two entries for the same thing are an error.
    key_field = ""
    noun = "message template"
    template_fields: ClassVar[tuple[str, ...]] = ("title", "body")

    kind: MessageKind
    severity: SeverityName | None = None
    service: Id | None = None
    audience_type: AudienceType | None = None
    title: Annotated[str, Field(min_length=1, max_length=2000)]
    body: Annotated[str, Field(min_length=1, max_length=20000)]

    def selector(self) -> str:
        """Return the entry's name: its kind and what narrows it."""
        return selector_key(self.kind, self.severity, self.service, self.audience_type)

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Check both templates: syntax, known fields, and that they render for any incident."""
        out = []
        for name in cls.template_fields:
            source = entry.get(name)
            if isinstance(source, str):
                problem = check_template(source)
                if problem is not None:
                    out.append((name, str(problem)))
        return out
