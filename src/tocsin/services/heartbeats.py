"""Heartbeats: a job pings; a missed ping raises an alert on its service; the next resolves it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tocsin.core.alerts import Action, Signal
from tocsin.services.alerting_config import HeartbeatConfig, IntegrationConfig
from tocsin.services.ingest import Delivery, open_key
from tocsin.storage.tables import AlertRow, HeartbeatRow

DEDUP_KEY = "heartbeat"


def integration_key(key: str) -> str:
    """Return the pseudo-integration under which a heartbeat's alerts are kept."""
    return f"heartbeat:{key}"


def record_ping(session: Session, key: str, now: datetime) -> None:
    """Remember the ping, which starts a new interval."""
    session.execute(update(HeartbeatRow).where(HeartbeatRow.key == key).values(last_ping_at=now))


def delivery(beat: HeartbeatConfig, action: Action, now: datetime) -> Delivery:
    """Return the delivery that raises (missed ping) or resolves (ping) a heartbeat's alert."""
    integration = IntegrationConfig(
        key=integration_key(beat.key),
        type="heartbeat",
        service=beat.service,
        name=beat.name,
        mapping={},
        rate_limit=None,
    )
    name = beat.name or beat.key
    signal = Signal(
        action=action,
        dedup_key=DEDUP_KEY,
        title=f"Heartbeat missed: {name}",
        # error, not critical: a missed backup pages, but is not by itself a P0 incident.
        severity="error",
        source="tocsin-heartbeats",
        labels={"alertname": "HeartbeatMissed", "heartbeat": beat.key},
        details={"interval": str(beat.interval)},
    )
    body = json.dumps({"heartbeat": beat.key, "event": action.value})
    return Delivery(integration, "heartbeat", body, now, (signal,), actor="heartbeat")


def overdue(session: Session, now: datetime) -> tuple[list[HeartbeatConfig], datetime | None]:
    """Return heartbeats whose interval passed without a ping (and no open alert yet),
    and the next moment another one could fall due."""
    rows = session.execute(
        select(
            HeartbeatRow.key,
            HeartbeatRow.service_id,
            HeartbeatRow.name,
            HeartbeatRow.interval_s,
            HeartbeatRow.created_at,
            HeartbeatRow.last_ping_at,
        ).where(~HeartbeatRow.archived)
    ).all()
    due: list[HeartbeatConfig] = []
    next_at: datetime | None = None
    for key, service, name, interval_s, created_at, last_ping_at in rows:
        deadline = (last_ping_at or created_at) + timedelta(seconds=interval_s)
        if deadline <= now:
            due.append(HeartbeatConfig(key, service, name, timedelta(seconds=interval_s)))
        elif next_at is None or deadline < next_at:
            next_at = deadline
    if due:
        open_keys = {open_key(integration_key(b.key), DEDUP_KEY): b for b in due}
        already = set(
            session.scalars(select(AlertRow.open_key).where(AlertRow.open_key.in_(open_keys)))
        )
        due = [b for k, b in open_keys.items() if k not in already]
    return due, next_at


def deliveries(beats: Sequence[HeartbeatConfig], now: datetime) -> list[Delivery]:
    """Return the deliveries raising an alert for each missed heartbeat."""
    return [delivery(beat, Action.TRIGGER, now) for beat in beats]


def state(
    last_ping_at: datetime | None, created_at: datetime, interval: timedelta, now: datetime
) -> tuple[datetime, str]:
    """Return when a heartbeat is due and its state: ok, overdue or waiting (never pinged).

    Due one interval after the last ping, or after it was configured if it never pinged.
    """
    due = (last_ping_at or created_at) + interval
    if due <= now:
        return due, "overdue"
    return due, "ok" if last_ping_at else "waiting"
