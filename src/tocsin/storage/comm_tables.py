"""Tables of stakeholder communication: audiences, communication rules and message templates
(owned by `tocsin apply`), the updates sent about incidents, and the cadence reminders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.storage.tables import Base, UTCDateTime


class AudienceRow(Base):
    """Who can be told: an email list, a Slack channel, a webhook, people …"""

    __tablename__ = "audiences"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    # The type's keys as the config file writes them (to, channel, url, secret, users …).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class CommunicationRuleRow(Base):
    """One entry of `communication`; its position in the file is its key."""

    __tablename__ = "communication_rules"
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    severities: Mapped[list[str]] = mapped_column(JSON, default=list)
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    messages: Mapped[list[str]] = mapped_column(JSON, default=list)


class MessageTemplateRow(Base):
    """A title/body pair for one message kind, optionally narrowed; keyed by what it is for."""

    __tablename__ = "message_templates"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    service: Mapped[str | None] = mapped_column(String(64), nullable=True)
    audience_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)


class StakeholderUpdateRow(Base):
    """One message to stakeholders about an incident: automatic (initial, resolution) or the
    commander's update; what was said and to which audiences."""

    __tablename__ = "stakeholder_updates"
    __table_args__ = (Index("ix_stakeholder_updates_incident", "incident_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    next_steps: Mapped[str] = mapped_column(Text, default="")
    eta: Mapped[str] = mapped_column(String(200), default="")
    # The status the update moved the incident to, if it did.
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    # The lifecycle event an automatic message answered; unique, so it is answered once.
    event_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32), default="api")


class UpdateReminderRow(Base):
    """A cadence action taken for one due time of an incident: `due` (the commander was
    reminded) or `overdue` (the next escalation step was told); each happens once."""

    __tablename__ = "update_reminders"
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    stage: Mapped[str] = mapped_column(String(8), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified: Mapped[list[str]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text, default="")
