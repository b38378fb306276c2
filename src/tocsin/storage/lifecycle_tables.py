"""Tables of lifecycle events and what reacts to them: the events themselves, outgoing
webhook subscriptions, and the delivery times throttled destinations are held to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.storage.oncall_tables import OutboxRow
from tocsin.storage.tables import Base, UTCDateTime

# The sender claims due pages before other due messages (services/outbox.py claim()); this
# index finds them without reading every due message of a burst.
_OUTBOX = OutboxRow.__table__.c
Index("ix_outbox_due_kind", _OUTBOX.status, _OUTBOX.kind, _OUTBOX.next_attempt_at)


class LifecycleEventRow(Base):
    """Something that happened to an incident or alert group, written with the change itself.

    pending → done (every reactor ran) | failed (a reactor raised; `error` says which and why).
    """

    __tablename__ = "lifecycle_events"
    __table_args__ = (
        Index("ix_lifecycle_events_pending", "status", "id"),
        Index("ix_lifecycle_events_subject", "subject_type", "subject_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12))
    # Which engine instance handled it, and when (claims are row locks of the module's
    # transaction, so nothing stays claimed after a crash).
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    processed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookSubscriptionRow(Base):
    """An outgoing webhook from the config's `webhooks` section."""

    __tablename__ = "webhook_subscriptions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    # The HMAC key the receiver verifies with; never shown in the UI or API.
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Event kinds or patterns ("incident.*", "*"); services: only events naming one of them.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class DeliveryThrottleRow(Base):
    """The recent delivery times of one throttled destination (e.g. one SMS number).

    The sender locks this row while deciding, so two senders never both use the last slot.
    """

    __tablename__ = "delivery_throttles"
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    destination: Mapped[str] = mapped_column(String(2048), primary_key=True)
    # ISO times of the deliveries still inside the throttle's window, oldest first.
    sent: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
