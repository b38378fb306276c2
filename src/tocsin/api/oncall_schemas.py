"""Request and response models of the on-call API: schedules, escalation policies,
escalations and notifications, contact methods and notification rules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from tocsin.api.schemas import NoNul

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
Note = Annotated[str, Field(max_length=2000), NoNul]


class PersonOut(BaseModel):
    id: str
    name: str
    email: str


# --- schedules ---


class ScheduleSummary(BaseModel):
    id: str
    name: str
    time_zone: str
    on_call: list[PersonOut] = Field(description="Who is on call now.")


class ScheduleList(BaseModel):
    items: list[ScheduleSummary]


class LayerOut(BaseModel):
    position: int
    name: str
    rotation: dict[str, Any] | None
    users: list[str]
    restrict: list[dict[str, Any]]
    calendar: bool = Field(description="An imported iCalendar decides this layer.")
    calendar_users: list[str] = Field(default_factory=list)
    calendar_unmatched: list[str] = Field(default_factory=list)


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["add", "remove", "replace"] | None = Field(
        default=None,
        description="add someone, remove someone, or replace someone (default: replace when "
        "`replaces` is given, else add).",
    )
    user: Key
    replaces: Key | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    note: Note = ""


class OverrideOut(BaseModel):
    id: int
    schedule: str
    kind: str
    user: str
    replaces: str | None
    starts_at: datetime
    ends_at: datetime
    note: str
    created_by: str
    created_at: datetime


class OverrideList(BaseModel):
    items: list[OverrideOut]


class SlotOut(BaseModel):
    user: str | None = Field(description="Who is on call; null in a gap.")
    name: str | None
    starts_at: datetime
    ends_at: datetime
    gap: bool


class GapOut(BaseModel):
    starts_at: datetime
    ends_at: datetime


class ScheduleDetailOut(BaseModel):
    id: str
    name: str
    description: str
    time_zone: str
    layers: list[LayerOut]
    overrides: list[OverrideOut] = Field(description="Overrides that have not ended.")
    on_call: list[PersonOut]
    next_shifts: list[SlotOut]
    gaps: list[GapOut] = Field(description="Periods in the next 14 days with nobody on call.")


class OnCallOut(BaseModel):
    schedule: str
    at: datetime
    users: list[PersonOut]


class ShiftsOut(BaseModel):
    schedule: str
    start: datetime
    end: datetime
    items: list[SlotOut]


class CalendarUrlOut(BaseModel):
    url: str


class CalendarImportIn(BaseModel):
    calendar: Annotated[str, Field(min_length=1), NoNul]


class MatchedUser(BaseModel):
    calendar_name: str
    user: str


class CalendarImportOut(BaseModel):
    schedule: str
    events: int
    matched_users: list[MatchedUser]
    unmatched: list[str] = Field(description="Names in the calendar that match no user.")
    layer: int
    replaced: bool = Field(description="An earlier imported calendar was replaced.")


# --- escalation policies and escalations ---


class TargetOut(BaseModel):
    target: str
    type: str
    id: str
    name: str


class StepOut(BaseModel):
    position: int
    after: str
    after_seconds: int
    targets: list[TargetOut]
    round_robin: bool


class PolicyOut(BaseModel):
    id: str
    name: str
    description: str
    repeat: int
    ack_timeout: str | None
    on_sla_breach: list[TargetOut]
    steps: list[StepOut]
    services: list[str]


class PolicyList(BaseModel):
    items: list[PolicyOut]


class EscalationOut(BaseModel):
    id: int
    subject_type: str
    subject_id: int
    title: str
    policy: str
    service: str | None
    urgency: str
    severity: str | None
    status: str
    run: int
    cycle: int
    step: int
    next_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    sla_due_at: datetime | None
    sla_breached_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None


class EscalationPage(BaseModel):
    items: list[EscalationOut]
    next_cursor: str | None


class LogEntryOut(BaseModel):
    id: int
    at: datetime
    kind: str
    user: str | None
    text: str
    outbox_id: int | None
    detail: dict[str, Any]


class MessageOut(BaseModel):
    id: int
    kind: str
    channel: str
    destination: str = Field(description="Masked unless the caller is an admin.")
    user: str | None
    contact_method: str | None
    title: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None


class NotificationsOut(BaseModel):
    subject_type: str
    subject_id: int
    escalation: EscalationOut | None
    log: list[LogEntryOut]
    messages: list[MessageOut]


# --- contact methods and notification rules ---


class ContactMethodCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["email", "webhook", "sms", "voice", "slack", "ntfy"]
    address: Annotated[str, Field(max_length=320), NoNul] | None = None
    url: Annotated[str, Field(max_length=2048), NoNul] | None = None
    number: Annotated[str, Field(max_length=32), NoNul] | None = Field(
        None, description="sms and voice: E.164, such as +14155550100"
    )
    member: Annotated[str, Field(max_length=32), NoNul] | None = Field(
        None, description="slack: the Slack member id, such as U024BE7LH"
    )
    topic: Annotated[str, Field(max_length=2048), NoNul] | None = Field(
        None, description="ntfy: a topic name or a whole topic URL"
    )
    name: Annotated[str, Field(max_length=200), NoNul] = ""


class ContactMethodOut(BaseModel):
    id: str
    user: str
    type: str
    address: str | None
    url: str | None
    number: str | None = None
    member: str | None = None
    topic: str | None = None
    name: str
    source: str = Field(description="config (declared by an admin) or user (added by its owner)")
    verified: bool
    verified_at: datetime | None
    created_at: datetime


class ContactMethodList(BaseModel):
    items: list[ContactMethodOut]


class VerifyIn(BaseModel):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=12)]


class CodeSentOut(BaseModel):
    contact_method: str
    expires_at: datetime | None


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: Annotated[str, Field(max_length=20)] = Field(description="e.g. 0m, 5m, 1h")
    via: Key


class RulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    high: list[RuleIn] = Field(default_factory=list, max_length=20)
    low: list[RuleIn] = Field(default_factory=list, max_length=20)


class RuleOut(BaseModel):
    after: str
    after_seconds: int
    via: str
    verified: bool = Field(description="Unverified methods are skipped when paging.")


class RulesOut(BaseModel):
    user: str
    high: list[RuleOut]
    low: list[RuleOut]
