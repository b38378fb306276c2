"""The engine modules of the alerting part: heartbeats and payload retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tocsin.services import heartbeats
from tocsin.services.ingest import ingest_many
from tocsin.storage.tables import AlertPayloadRow

CLEANUP_EVERY = timedelta(hours=1)


class HeartbeatModule:
    """Raise an alert for every heartbeat whose interval passed without a ping."""

    name = "heartbeats"
    on_work = False

    def update(self, session: Session, now: datetime) -> datetime | None:
        due, next_at = heartbeats.overdue(session, now)
        if due:
            for result in ingest_many(session, heartbeats.deliveries(due, now)):
                if isinstance(result, Exception):
                    raise result
        return next_at


class PayloadRetentionModule:
    """Delete raw payloads older than the retention period (alerts and their history stay)."""

    name = "payload-retention"
    on_work = False

    def __init__(self, retention: timedelta) -> None:
        self.retention = retention

    def update(self, session: Session, now: datetime) -> datetime | None:
        session.execute(
            delete(AlertPayloadRow).where(AlertPayloadRow.received_at < now - self.retention)
        )
        return now + CLEANUP_EVERY
