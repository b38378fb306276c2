"""Tables of the on-call part: people's contact methods and rules, schedules, escalation
policies, the running escalations and pages, the outbox and the notification log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.storage.tables import Base, UTCDateTime

# --- how to reach people ---


class ContactMethodRow(Base):
    __tablename__ = "contact_methods"
    __table_args__ = (Index("ix_contact_methods_user", "user_id"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    type: Mapped[str] = mapped_column(String(16))
    # The address, URL or number, by type.
    target: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str] = mapped_column(String(200), default="")
    # "config": declared by an admin and trusted; "user": added by its owner, verified first.
    source: Mapped[str] = mapped_column(String(8), default="config")
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verify_code_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    verify_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class NotificationRuleRow(Base):
    __tablename__ = "notification_rules"
    __table_args__ = (UniqueConstraint("user_id", "urgency", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    urgency: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer)
    after_s: Mapped[int] = mapped_column(Integer)
    contact_method_id: Mapped[str] = mapped_column(ForeignKey("contact_methods.id"))


class ChannelSettingsRow(Base):
    """Settings of one outgoing channel (e.g. `email`: the SMTP server), from the config."""

    __tablename__ = "channel_settings"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


# --- schedules ---


class ScheduleRow(Base):
    __tablename__ = "schedules"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    time_zone: Mapped[str] = mapped_column(String(64))
    # Secret that lets calendar apps (which cannot send a bearer token) read calendar.ics.
    calendar_token: Mapped[str] = mapped_column(String(64))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


# The name of the layer an iCalendar import through the API creates; `tocsin apply` keeps it.
IMPORTED_CALENDAR = "Imported calendar"


class ScheduleLayerRow(Base):
    __tablename__ = "schedule_layers"
    __table_args__ = (UniqueConstraint("schedule_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), default="")
    # {type, handoff, start, length?, every?} as written in the config file.
    rotation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    users: Mapped[list[str]] = mapped_column(JSON, default=list)
    restrict: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # An imported iCalendar (text) used instead of a rotation.
    calendar: Mapped[str | None] = mapped_column(Text, nullable=True)


class ScheduleOverrideRow(Base):
    __tablename__ = "schedule_overrides"
    __table_args__ = (Index("ix_schedule_overrides_schedule", "schedule_id", "ends_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id"))
    kind: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    replaces_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScheduleOnCallRow(Base):
    """Who the schedules module last saw on call, so handoffs are noticed once."""

    __tablename__ = "schedule_on_call"
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id"), primary_key=True)
    users: Mapped[list[str]] = mapped_column(JSON, default=list)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    next_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- escalation policies ---


class EscalationPolicyRow(Base):
    __tablename__ = "escalation_policies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # Extra passes through the steps after the first when nobody acknowledges.
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    ack_timeout_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Targets paged when the severity's respond_within passes unacknowledged.
    sla_notify: Mapped[list[str]] = mapped_column(JSON, default=list)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class EscalationStepRow(Base):
    __tablename__ = "escalation_steps"
    __table_args__ = (UniqueConstraint("policy_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    policy_id: Mapped[str] = mapped_column(ForeignKey("escalation_policies.id"))
    position: Mapped[int] = mapped_column(Integer)
    after_s: Mapped[int] = mapped_column(Integer)
    targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    round_robin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Next index into the resolved targets for round robin (shared by every escalation).
    rr_next: Mapped[int] = mapped_column(Integer, default=0)


# --- running escalations ---


class EscalationRow(Base):
    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("subject_type", "subject_id"),
        Index("ix_escalations_due", "status", "next_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(Integer)
    policy_id: Mapped[str] = mapped_column(ForeignKey("escalation_policies.id"))
    service_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    urgency: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    title: Mapped[str] = mapped_column(String(1024), default="")
    # active → acknowledged → (ack timeout: active again) → resolved
    status: Mapped[str] = mapped_column(String(16))
    run: Mapped[int] = mapped_column(Integer, default=0)
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    run_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sla_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PageRow(Base):
    """One person being notified for one escalation step, through their notification rules."""

    __tablename__ = "pages"
    __table_args__ = (
        UniqueConstraint("escalation_id", "run", "cycle", "step", "user_id"),
        Index("ix_pages_due", "status", "next_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    urgency: Mapped[str] = mapped_column(String(8))
    run: Mapped[int] = mapped_column(Integer)
    cycle: Mapped[int] = mapped_column(Integer)
    # Step position, or -1 for the SLA-breach step.
    step: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    next_rule: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    """One outgoing message. Sent at least once; the key lets the receiver drop repeats."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_subject", "subject_type", "subject_id", "id"),
        Index("ix_outbox_leased", "status", "claimed_until"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(2048))
    contact_method_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subject_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    escalation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    page_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    title: Mapped[str] = mapped_column(String(1024), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # pending → sent | failed (attempts exhausted or a permanent error)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A sender holds a message until then; after a crash another sender takes it again.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class NotificationLogRow(Base):
    """What the engine did about a subject: steps fired, people paged, messages, SLA, acks."""

    __tablename__ = "notification_log"
    __table_args__ = (Index("ix_notification_log_subject", "subject_type", "subject_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(Integer)
    escalation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outbox_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- the engine itself ---


class EngineModuleRow(Base):
    """One row per engine module: its lock (FOR UPDATE NOWAIT) and its code version, so two
    versions of a module never run side by side during a rolling upgrade."""

    __tablename__ = "engine_modules"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_run_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
