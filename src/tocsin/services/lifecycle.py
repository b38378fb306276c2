"""Lifecycle events: written with the change they describe, handed to reactors by the engine.

A service calls emit() / emit_many() in the transaction that makes the change, so an event
exists exactly when its change was committed. The engine's lifecycle module claims pending
events in order (SKIP LOCKED on PostgreSQL), runs the reactors, queues what they return and
marks the events done, all in one transaction (engine/lifecycle_module.py).

Emitting also wakes the engine at commit: through NOTIFY on PostgreSQL (every engine
process), and through the wakers registered here in this process (the SQLite engine inside
`tocsin serve`), so an acknowledgement's webhook leaves in milliseconds, not at the engine's
next deadline.

The caller owns the transaction, as everywhere: nothing here commits.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, event, select, update
from sqlalchemy.orm import Session

from tocsin.core.lifecycle import (
    ALERT_GROUP,
    INCIDENT,
    INCIDENT_DECLARED,
    LifecycleEvent,
    subject_path,
)
from tocsin.services import wakeup
from tocsin.storage.bulk import insert_rows
from tocsin.storage.lifecycle_tables import LifecycleEventRow
from tocsin.storage.tables import IncidentRoleAssignmentRow, IncidentRow, IncidentServiceRow

PENDING = "pending"
DONE = "done"
FAILED = "failed"
ERROR_CHARS = 2000
EVENTS = cast(Table, LifecycleEventRow.__table__)
_WAKE_REGISTERED = "tocsin_lifecycle_wake"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write: what happened, to which subject, by whom, when."""

    kind: str
    subject_type: str
    subject_id: int
    actor: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


class Wakeable(Protocol):
    def notify(self) -> None: ...


_wakers: weakref.WeakSet[Any] = weakref.WeakSet()
_wakers_lock = threading.Lock()


def wake_on_commit(waker: Wakeable) -> None:
    """Have `waker` notified whenever a transaction that emitted events commits."""
    with _wakers_lock:
        _wakers.add(waker)


def emit(
    session: Session,
    *,
    kind: str,
    subject_type: str,
    subject_id: int,
    actor: str,
    now: datetime,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Write one lifecycle event in the caller's transaction."""
    emit_many(session, [NewEvent(kind, subject_type, subject_id, actor, now, data or {})])


def emit_many(session: Session, events: Sequence[NewEvent]) -> None:
    """Write many events with one statement (the ingest and declaration hot paths)."""
    if not events:
        return
    rows = [
        {
            "at": e.at,
            "kind": e.kind,
            "subject_type": e.subject_type,
            "subject_id": e.subject_id,
            "actor": e.actor[:200],
            "data": dict(e.data),
            "status": PENDING,
            "processed_at": None,
            "processed_by": None,
            "error": None,
        }
        for e in events
    ]
    insert_rows(session, EVENTS, rows)
    _wake_at_commit(session)


def _wake_at_commit(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at COMMIT to every engine process; identical notifications of one
        # transaction are folded into one. Sent on every call: a savepoint rolled back since
        # an earlier call may have taken that one with it.
        wakeup.notify_engines(session)
    if session.info.get(_WAKE_REGISTERED):
        return
    session.info[_WAKE_REGISTERED] = True
    event.listen(session, "after_commit", _after_commit, once=True)
    event.listen(session, "after_rollback", _forget, once=True)


def _after_commit(session: Session) -> None:
    session.info.pop(_WAKE_REGISTERED, None)
    with _wakers_lock:
        wakers = list(_wakers)
    for waker in wakers:
        waker.notify()


def _forget(session: Session) -> None:
    session.info.pop(_WAKE_REGISTERED, None)


# What a handled event needs (to_event): columns, not ORM objects. The engine claims after
# every ingest batch that opened a group; loading entities was a third of its lifecycle runs.
_EVENT_COLUMNS = (
    LifecycleEventRow.id,
    LifecycleEventRow.at,
    LifecycleEventRow.kind,
    LifecycleEventRow.subject_type,
    LifecycleEventRow.subject_id,
    LifecycleEventRow.actor,
    LifecycleEventRow.data,
)


class EventRecord(Protocol):
    """A stored event as claim_pending returns it (a row of _EVENT_COLUMNS, or the entity)."""

    id: int
    at: datetime
    kind: str
    subject_type: str
    subject_id: int
    actor: str
    data: Mapping[str, Any] | None


def claim_pending(session: Session, limit: int) -> list[EventRecord]:
    """Lock and return up to `limit` pending events, oldest first.

    On PostgreSQL the rows are locked with SKIP LOCKED, so a second instance never waits for
    or repeats them; the lock ends with the caller's transaction, so nothing stays claimed
    after a crash. SQLite serialises writers already.
    """
    query = (
        select(*_EVENT_COLUMNS)
        .where(LifecycleEventRow.status == PENDING)
        .order_by(LifecycleEventRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return cast(list[EventRecord], list(session.execute(query)))


def mark_done(session: Session, ids: Iterable[int], now: datetime, owner: str) -> None:
    """Record that every reactor handled these events."""
    wanted = list(ids)
    if wanted:
        # On the table, not the entity: the ORM's bulk-update path costs more than the UPDATE.
        session.execute(
            update(EVENTS)
            .where(EVENTS.c.id.in_(wanted))
            .values(status=DONE, processed_at=now, processed_by=owner, error=None)
        )


def mark_failed(session: Session, event_id: int, now: datetime, owner: str, error: str) -> None:
    """Record that a reactor raised on this event (it is not tried again)."""
    session.execute(
        update(LifecycleEventRow)
        .where(LifecycleEventRow.id == event_id)
        .values(status=FAILED, processed_at=now, processed_by=owner, error=error[:ERROR_CHARS])
        .execution_options(synchronize_session=False)
    )


def to_event(row: EventRecord) -> LifecycleEvent:
    """Return the contract's view of a stored event."""
    return LifecycleEvent(
        id=row.id,
        at=row.at,
        kind=row.kind,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        actor=row.actor,
        data=dict(row.data or {}),
    )


def events_of(session: Session, subject_type: str, subject_id: int) -> list[LifecycleEventRow]:
    """Return a subject's events, oldest first."""
    return list(
        session.scalars(
            select(LifecycleEventRow)
            .where(
                LifecycleEventRow.subject_type == subject_type,
                LifecycleEventRow.subject_id == subject_id,
            )
            .order_by(LifecycleEventRow.id)
        )
    )


# --- what events say about their subject ---


def incident_fields(
    incident: IncidentRow | Mapping[str, Any],
    incident_id: int,
    services: Sequence[str],
    commander: str | None,
) -> dict[str, Any]:
    """Return what every incident event carries (receivers need no second request)."""
    return {
        "title": _get(incident, "title"),
        "slug": _get(incident, "slug"),
        "severity": _get(incident, "severity"),
        "status": _get(incident, "status"),
        "customer_impact": _get(incident, "customer_impact") or "",
        "services": list(services),
        "commander": commander,
        "path": subject_path(INCIDENT, incident_id),
    }


def declared(
    incident_id: int,
    actor: str,
    now: datetime,
    row: Mapping[str, Any],
    services: Sequence[str],
    commander: str | None,
) -> NewEvent:
    """Return the incident.declared event of a declaration, from the values just written."""
    data = incident_fields(row, incident_id, services, commander)
    return NewEvent(INCIDENT_DECLARED, INCIDENT, incident_id, actor, now, data)


def incident_changed(
    session: Session,
    incident: IncidentRow,
    actor: str,
    now: datetime,
    *kinds: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Emit events of these kinds about an incident (acknowledged, status changed …)."""
    data = incident_data(session, incident, extra)
    emit_many(session, [NewEvent(kind, INCIDENT, incident.id, actor, now, data) for kind in kinds])


def incident_data(
    session: Session, incident: IncidentRow, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return an incident event's data, reading its services and commander."""
    services = list(
        session.scalars(
            select(IncidentServiceRow.service_id)
            .where(IncidentServiceRow.incident_id == incident.id)
            .order_by(IncidentServiceRow.service_id)
        )
    )
    commander = session.scalar(
        select(IncidentRoleAssignmentRow.user_id).where(
            IncidentRoleAssignmentRow.incident_id == incident.id,
            IncidentRoleAssignmentRow.role == "commander",
        )
    )
    return {**incident_fields(incident, incident.id, services, commander), **(extra or {})}


def group_data(group: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return an alert group event's data from its row (a mapping or an AlertGroupRow)."""
    service = _get(group, "service_id")
    return {
        "title": _get(group, "title"),
        "status": _get(group, "status"),
        "service": service,
        "services": [service] if service else [],
        "urgency": _get(group, "urgency"),
        "incident_severity": _get(group, "incident_severity"),
        "incident_id": _get(group, "incident_id"),
        "alert_count": _get(group, "alert_count"),
        "path": subject_path(ALERT_GROUP, int(_get(group, "id"))),
        **(extra or {}),
    }


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name)
