"""Read side of alerting: filtered, cursor-paginated alerts and alert groups, and history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, exists, select
from sqlalchemy.orm import Session

from tocsin.core.errors import InvalidInput
from tocsin.services.queries import decode_cursor, encode_cursor
from tocsin.storage.tables import (
    AlertGroupRow,
    AlertLogRow,
    AlertPayloadRow,
    AlertRow,
    ChangeEventRow,
)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    service: str | None = None
    status: Sequence[str] = ()
    labels: Sequence[tuple[str, str]] = ()
    dedup_key: str | None = None
    group_id: int | None = None
    integration: str | None = None
    incident_id: int | None = None


def parse_label_filters(values: Sequence[str]) -> list[tuple[str, str]]:
    """Parse `name=value` label filters (repeatable; all must hold)."""
    out = []
    for value in values:
        name, sep, wanted = value.partition("=")
        if not sep or not name:
            raise InvalidInput(f"label filter {value!r} must look like name=value", field="label")
        out.append((name, wanted))
    return out


def list_alerts(
    session: Session, flt: AlertFilter, *, cursor: str | None, limit: int
) -> tuple[Sequence[Row[Any]], str | None]:
    """Return one page of alerts, newest first, and the next cursor."""
    stmt = select(AlertRow.__table__)
    if flt.service:
        stmt = stmt.where(AlertRow.service_id == flt.service)
    if flt.status:
        stmt = stmt.where(AlertRow.status.in_(flt.status))
    if flt.dedup_key:
        stmt = stmt.where(AlertRow.dedup_key == flt.dedup_key)
    if flt.group_id is not None:
        stmt = stmt.where(AlertRow.group_id == flt.group_id)
    if flt.integration:
        stmt = stmt.where(AlertRow.integration_key == flt.integration)
    for name, wanted in flt.labels:
        stmt = stmt.where(AlertRow.labels[name].as_string() == wanted)
    if cursor:
        stmt = stmt.where(AlertRow.id < decode_cursor(cursor))
    rows = session.execute(stmt.order_by(AlertRow.id.desc()).limit(limit + 1)).all()
    return _page(rows, limit)


def list_groups(
    session: Session, flt: AlertFilter, *, cursor: str | None, limit: int
) -> tuple[Sequence[Row[Any]], str | None]:
    """Return one page of alert groups, newest first; label/dedup filters match any alert."""
    stmt = select(AlertGroupRow.__table__)
    if flt.service:
        stmt = stmt.where(AlertGroupRow.service_id == flt.service)
    if flt.status:
        stmt = stmt.where(AlertGroupRow.status.in_(flt.status))
    if flt.incident_id is not None:
        stmt = stmt.where(AlertGroupRow.incident_id == flt.incident_id)
    if flt.labels or flt.dedup_key or flt.integration:
        inner = select(AlertRow.id).where(AlertRow.group_id == AlertGroupRow.id)
        for name, wanted in flt.labels:
            inner = inner.where(AlertRow.labels[name].as_string() == wanted)
        if flt.dedup_key:
            inner = inner.where(AlertRow.dedup_key == flt.dedup_key)
        if flt.integration:
            inner = inner.where(AlertRow.integration_key == flt.integration)
        stmt = stmt.where(exists(inner))
    if cursor:
        stmt = stmt.where(AlertGroupRow.id < decode_cursor(cursor))
    rows = session.execute(stmt.order_by(AlertGroupRow.id.desc()).limit(limit + 1)).all()
    return _page(rows, limit)


def _page(rows: Sequence[Row[Any]], limit: int) -> tuple[Sequence[Row[Any]], str | None]:
    has_more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if has_more and rows else None)


def alert(session: Session, alert_id: int) -> Row[Any] | None:
    return session.execute(select(AlertRow.__table__).where(AlertRow.id == alert_id)).first()


def group(session: Session, group_id: int) -> Row[Any] | None:
    return session.execute(
        select(AlertGroupRow.__table__).where(AlertGroupRow.id == group_id)
    ).first()


def alert_history(session: Session, alert_id: int, limit: int = 500) -> Sequence[Row[Any]]:
    """Return an alert's history, oldest first."""
    stmt = (
        select(AlertLogRow.__table__)
        .where(AlertLogRow.alert_id == alert_id)
        .order_by(AlertLogRow.id)
        .limit(limit)
    )
    return session.execute(stmt).all()


def group_history(session: Session, group_id: int, limit: int = 500) -> Sequence[Row[Any]]:
    """Return a group's history (its own entries and its alerts'), newest first."""
    stmt = (
        select(AlertLogRow.__table__)
        .where(AlertLogRow.group_id == group_id)
        .order_by(AlertLogRow.id.desc())
        .limit(limit)
    )
    return session.execute(stmt).all()


def status_counts(session: Session, group_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Return how many alerts of each group are in each status."""
    from sqlalchemy import func

    out: dict[int, dict[str, int]] = {gid: {} for gid in group_ids}
    if not group_ids:
        return out
    stmt = (
        select(AlertRow.group_id, AlertRow.status, func.count())
        .where(AlertRow.group_id.in_(group_ids))
        .group_by(AlertRow.group_id, AlertRow.status)
    )
    for group_id, status, count in session.execute(stmt):
        out[group_id][status] = count
    return out


def payload(session: Session, payload_id: int) -> Row[Any] | None:
    return session.execute(
        select(AlertPayloadRow.__table__).where(AlertPayloadRow.id == payload_id)
    ).first()


def rejected_payloads(session: Session, integration: str | None, limit: int) -> Sequence[Row[Any]]:
    """Return the most recent refused payloads (with why), newest first."""
    stmt = select(AlertPayloadRow.__table__).where(AlertPayloadRow.error.is_not(None))
    if integration:
        stmt = stmt.where(AlertPayloadRow.integration_key == integration)
    return session.execute(stmt.order_by(AlertPayloadRow.id.desc()).limit(limit)).all()


def change_events(
    session: Session, service: str | None, *, cursor: str | None, limit: int
) -> tuple[Sequence[Row[Any]], str | None]:
    """Return change events, newest first."""
    stmt = select(ChangeEventRow.__table__)
    if service:
        stmt = stmt.where(ChangeEventRow.service_id == service)
    if cursor:
        stmt = stmt.where(ChangeEventRow.id < decode_cursor(cursor))
    rows = session.execute(stmt.order_by(ChangeEventRow.id.desc()).limit(limit + 1)).all()
    return _page(rows, limit)


def service_timeline(session: Session, service: str, limit: int) -> list[dict[str, Any]]:
    """Return what happened on a service, newest first: changes, alert groups, incidents."""
    from tocsin.storage.tables import IncidentRow, IncidentServiceRow

    items: list[dict[str, Any]] = []
    changes = session.execute(
        select(ChangeEventRow.id, ChangeEventRow.summary, ChangeEventRow.source,
               ChangeEventRow.timestamp, ChangeEventRow.received_at)
        .where(ChangeEventRow.service_id == service)
        .order_by(ChangeEventRow.id.desc()).limit(limit)
    )  # fmt: skip
    for change_id, summary, source, timestamp, received_at in changes:
        items.append({"at": timestamp or received_at, "kind": "change", "id": change_id,
                      "title": summary, "status": None, "source": source})  # fmt: skip
    groups = session.execute(
        select(AlertGroupRow.id, AlertGroupRow.title, AlertGroupRow.status,
               AlertGroupRow.created_at, AlertGroupRow.incident_id)
        .where(AlertGroupRow.service_id == service)
        .order_by(AlertGroupRow.id.desc()).limit(limit)
    )  # fmt: skip
    for group_id, title, status, created_at, incident_id in groups:
        items.append({"at": created_at, "kind": "alert_group", "id": group_id, "title": title,
                      "status": status, "incident_id": incident_id})  # fmt: skip
    incidents = session.execute(
        select(IncidentRow.id, IncidentRow.title, IncidentRow.status, IncidentRow.declared_at,
               IncidentRow.severity)
        .join(IncidentServiceRow, IncidentServiceRow.incident_id == IncidentRow.id)
        .where(IncidentServiceRow.service_id == service)
        .order_by(IncidentRow.id.desc()).limit(limit)
    )  # fmt: skip
    for incident_id, title, status, declared_at, severity in incidents:
        items.append({"at": declared_at, "kind": "incident", "id": incident_id, "title": title,
                      "status": status, "severity": severity})  # fmt: skip
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]
