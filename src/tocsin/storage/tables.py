"""Relational schema. Portable SQL only: every column type works on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# A naming convention makes Alembic's batch mode (needed for SQLite ALTERs) work predictably.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, hand back aware UTC, on every backend.

    SQLite has no time zone type, so without this a value read back would compare unequal
    to the value written on PostgreSQL.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Tocsin stores aware UTC times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- configuration objects (owned by `tocsin apply`; archived, never deleted) ---


class SeverityRow(Base):
    __tablename__ = "severities"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    respond_within_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    update_every_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pages: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class IncidentRoleRow(Base):
    __tablename__ = "incident_roles"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), default="")
    role: Mapped[str] = mapped_column(String(16), default="responder")
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class TeamRow(Base):
    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class TeamMemberRow(Base):
    __tablename__ = "team_members"
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ServiceRow(Base):
    __tablename__ = "services"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    # Who gets paged: the default policy, and per incident severity where they differ.
    escalation_policy_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    severity_policies: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class ChecklistTemplateItemRow(Base):
    __tablename__ = "checklist_template_items"
    __table_args__ = (UniqueConstraint("severity", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    severity: Mapped[str] = mapped_column(ForeignKey("severities.name"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


# --- incidents ---


class IncidentRow(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_status_id", "status", "id"),
        Index("ix_incidents_severity_id", "severity", "id"),
        Index("ix_incidents_declared_at", "declared_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(ForeignKey("severities.name"))
    status: Mapped[str] = mapped_column(String(16))
    customer_impact: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    mitigated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IncidentServiceRow(Base):
    __tablename__ = "incident_services"
    __table_args__ = (Index("ix_incident_services_service", "service_id", "incident_id"),)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), primary_key=True)


class IncidentRoleAssignmentRow(Base):
    __tablename__ = "incident_role_assignments"
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    role: Mapped[str] = mapped_column(ForeignKey("incident_roles.name"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TimelineEventRow(Base):
    __tablename__ = "timeline_events"
    __table_args__ = (Index("ix_timeline_events_incident", "incident_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TimelineEventRevisionRow(Base):
    """The earlier text of an edited note: nothing on the timeline is ever lost."""

    __tablename__ = "timeline_event_revisions"
    __table_args__ = (Index("ix_timeline_event_revisions_event", "event_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("timeline_events.id"))
    text: Mapped[str] = mapped_column(Text)
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    replaced_by: Mapped[str] = mapped_column(String(200))


class ChecklistItemRow(Base):
    __tablename__ = "checklist_items"
    __table_args__ = (Index("ix_checklist_items_incident", "incident_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(32))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SlugCounterRow(Base):
    """Per-day sequence behind incident-YYYY-MM-DD-NNN."""

    __tablename__ = "slug_counters"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


# --- access ---


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- alerting configuration (owned by `tocsin apply`) ---


class IntegrationRow(Base):
    """Where alerts come in: the key is the secret in the URL (or PagerDuty's routing_key)."""

    __tablename__ = "integrations"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rate_limit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class AlertRouteRow(Base):
    """One routing rule; its position in the file is its key and its order."""

    __tablename__ = "alert_routes"
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    match: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    continue_: Mapped[bool] = mapped_column("continue", Boolean, default=False)
    service_id: Mapped[str | None] = mapped_column(ForeignKey("services.id"), nullable=True)
    urgency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    incident_severity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # null: never; {"min_alerts": n, "within_s": s | null}: when that many alerts arrived.
    declare: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class GroupingRuleRow(Base):
    __tablename__ = "grouping_rules"
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), primary_key=True)
    by: Mapped[list[str]] = mapped_column(JSON, default=list)
    template: Mapped[str | None] = mapped_column(Text, nullable=True)
    window_s: Mapped[int | None] = mapped_column(Integer, nullable=True)


class InhibitRuleRow(Base):
    __tablename__ = "inhibit_rules"
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source_match: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target_match: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    equal: Mapped[list[str]] = mapped_column(JSON, default=list)


class HeartbeatRow(Base):
    __tablename__ = "heartbeats"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    interval_s: Mapped[int] = mapped_column(Integer)
    # Set on apply so a new heartbeat gets one full interval before it can be overdue.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_ping_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class SilenceRow(Base):
    """A silence from the API, or from config (then `config_position` names its entry)."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    matchers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    config_position: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)


class MaintenanceWindowRow(Base):
    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_ends_at", "ends_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    config_position: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)


# --- alerts ---


class AlertPayloadRow(Base):
    """A request body exactly as received (kept for the retention period), or why it was refused."""

    __tablename__ = "alert_payloads"
    __table_args__ = (Index("ix_alert_payloads_received_at", "received_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_key: Mapped[str] = mapped_column(String(128))
    format: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AlertGroupRow(Base):
    __tablename__ = "alert_groups"
    __table_args__ = (
        Index("ix_alert_groups_status_id", "status", "id"),
        Index("ix_alert_groups_service_id", "service_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    group_key: Mapped[str] = mapped_column(Text)
    # service + group key while the group collects alerts, NULL once closed: one open group
    # per key, enforced by the database even with several writers.
    open_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(1024))
    urgency: Mapped[str] = mapped_column(String(8))
    incident_severity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    declare: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), nullable=True)
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_alert_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_group", "group_id", "id"),
        Index("ix_alerts_status_id", "status", "id"),
        Index("ix_alerts_service_id", "service_id", "id"),
        Index("ix_alerts_dedup_key", "dedup_key"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_key: Mapped[str] = mapped_column(String(128))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("alert_groups.id"))
    dedup_key: Mapped[str] = mapped_column(String(255))
    # integration + dedup key while the alert is open, NULL once resolved (see AlertGroupRow).
    open_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    suppressed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    title: Mapped[str] = mapped_column(String(1024))
    severity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str | None] = mapped_column(String(255), nullable=True)
    component: Mapped[str | None] = mapped_column(String(255), nullable=True)
    group_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    class_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    links: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    images: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    urgency: Mapped[str] = mapped_column(String(8))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    event_count: Mapped[int] = mapped_column(Integer, default=1)


class AlertLogRow(Base):
    """An alert's history: fired, re-fired, acknowledged, resolved, suppressed …"""

    __tablename__ = "alert_log"
    __table_args__ = (
        Index("ix_alert_log_alert", "alert_id", "id"),
        Index("ix_alert_log_group", "group_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), nullable=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("alert_groups.id"), nullable=True)
    payload_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")


class ChangeEventRow(Base):
    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_service", "service_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_key: Mapped[str] = mapped_column(String(128))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    summary: Mapped[str] = mapped_column(String(1024))
    source: Mapped[str | None] = mapped_column(String(255), nullable=True)
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    links: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    custom_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


# The on-call tables live in their own module; importing it here registers them on Base's
# metadata for Alembic and create_all (it imports Base from this module, which is defined).
from tocsin.storage import comm_tables as _comm_tables  # noqa: E402, F401
from tocsin.storage import lifecycle_tables as _lifecycle_tables  # noqa: E402, F401
from tocsin.storage import oncall_tables as _oncall_tables  # noqa: E402, F401
