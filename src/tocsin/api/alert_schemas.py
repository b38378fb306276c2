"""Request and response models of the alerting API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tocsin.api.schemas import NoNul

Text = Annotated[str, NoNul]


class LinkOut(BaseModel):
    href: str
    text: str = ""


class AlertOut(BaseModel):
    id: int
    status: str = Field(description="firing, acknowledged, resolved or suppressed")
    dedup_key: str
    title: str
    source: str | None
    severity: str | None
    service: str
    integration: str
    group_id: int
    urgency: str
    labels: dict[str, str]
    details: dict[str, Any]
    links: list[dict[str, str]]
    images: list[dict[str, str]]
    component: str | None
    group: str | None
    class_: str | None = Field(alias="class", serialization_alias="class")
    suppressed_by: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    event_count: int

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class HistoryOut(BaseModel):
    id: int
    at: datetime
    kind: str = Field(description="fired, refired, acknowledged, resolved, suppressed, silenced …")
    actor: str
    text: str
    alert_id: int | None
    payload_id: int | None


class AlertDetail(AlertOut):
    history: list[HistoryOut]


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class AlertGroupOut(BaseModel):
    id: int
    status: str = Field(description="firing, acknowledged, resolved or suppressed")
    title: str
    service: str
    urgency: str
    incident_severity: str | None
    incident_id: int | None
    alert_count: int
    counts: dict[str, int] = Field(description="Alerts of the group by status.")
    group_key: str
    created_at: datetime
    last_alert_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    version: int


class AlertGroupDetail(AlertGroupOut):
    alerts: list[AlertOut]
    history: list[HistoryOut]


class AlertGroupPage(BaseModel):
    items: list[AlertGroupOut]
    next_cursor: str | None


class SilenceRequest(BaseModel):
    ends_at: AwareDatetime | None = None
    duration: str | None = Field(default=None, description="e.g. 2h; instead of ends_at")
    comment: str = Field(default="", max_length=2000)


class DeclareFromGroup(BaseModel):
    severity: Text | None = Field(default=None, max_length=32)
    title: Text | None = Field(default=None, max_length=300)


class MergeRequest(BaseModel):
    incident: Text = Field(max_length=40, description="Incident number or INC-n reference.")


class SilenceCreate(BaseModel):
    matchers: dict[str, Any] = Field(description="Same matchers as routes: value, list or ops.")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: str | None = None
    comment: str = Field(default="", max_length=2000)


class SilenceOut(BaseModel):
    id: int
    matchers: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    from_config: bool
    active: bool


class SilencePage(BaseModel):
    items: list[SilenceOut]


class WindowCreate(BaseModel):
    service: Text = Field(min_length=1, max_length=64)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: str | None = None
    comment: str = Field(default="", max_length=2000)


class WindowOut(BaseModel):
    id: int
    service: str
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime
    from_config: bool
    active: bool


class WindowPage(BaseModel):
    items: list[WindowOut]


class ChangeEventOut(BaseModel):
    id: int
    service: str
    integration: str
    summary: str
    source: str | None
    timestamp: datetime | None
    links: list[dict[str, str]]
    custom_details: dict[str, Any]
    received_at: datetime


class ChangeEventPage(BaseModel):
    items: list[ChangeEventOut]
    next_cursor: str | None


class HeartbeatOut(BaseModel):
    key: str
    name: str
    service: str
    interval: str
    last_ping_at: datetime | None
    due_at: datetime
    status: str = Field(description="ok, overdue or waiting (never pinged, not yet due)")


class HeartbeatPage(BaseModel):
    items: list[HeartbeatOut]


class PayloadOut(BaseModel):
    id: int
    integration: str
    format: str
    received_at: datetime
    body: str | None
    error: Any | None
