"""The incident timeline: append-only events; note edits keep every earlier text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.actors import Actor
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.storage.tables import IncidentRow, TimelineEventRevisionRow, TimelineEventRow


def record(
    session: Session,
    incident_id: int,
    actor: Actor,
    now: datetime,
    kind: str,
    text: str = "",
    data: dict[str, Any] | None = None,
) -> TimelineEventRow:
    """Append one event to an incident's timeline."""
    event = TimelineEventRow(
        incident_id=incident_id,
        at=now,
        actor=actor.id,
        source=actor.source,
        kind=kind,
        text=text,
        data=data or {},
        pinned=False,
    )
    session.add(event)
    return event


def add_note(
    session: Session, actor: Actor, now: datetime, incident_id: int, text: str
) -> TimelineEventRow:
    """Add a responder's note to the timeline."""
    incident = _lock_incident(session, incident_id)
    event = record(session, incident_id, actor, now, "note", text)
    incident.updated_at = now
    incident.version += 1
    session.flush()
    return event


def edit_note(
    session: Session, actor: Actor, now: datetime, incident_id: int, event_id: int, text: str
) -> TimelineEventRow:
    """Replace a note's text, keeping the earlier text as a revision."""
    incident = _lock_incident(session, incident_id)
    event = get_event(session, incident_id, event_id)
    if event.kind != "note":
        raise InvalidInput("only notes can be edited; other events are records", field="event_id")
    if event.text == text:
        return event
    session.add(
        TimelineEventRevisionRow(
            event_id=event.id, text=event.text, replaced_at=now, replaced_by=actor.id
        )
    )
    event.text = text
    event.edited_at = now
    # A new version tells open pages (which poll by version) to redraw the edited note.
    incident.version += 1
    incident.updated_at = now
    return event


def set_pinned(
    session: Session, actor: Actor, now: datetime, incident_id: int, event_id: int, pinned: bool
) -> TimelineEventRow:
    """Pin or unpin an event; the pin itself is recorded."""
    _lock_incident(session, incident_id)
    event = get_event(session, incident_id, event_id)
    if event.pinned != pinned:
        event.pinned = pinned
        record(
            session, incident_id, actor, now, "pinned" if pinned else "unpinned",
            f"{'Pinned' if pinned else 'Unpinned'} event {event.id}", {"event_id": event.id},
        )  # fmt: skip
    return event


def get_event(session: Session, incident_id: int, event_id: int) -> TimelineEventRow:
    event = session.get(TimelineEventRow, event_id)
    if event is None or event.incident_id != incident_id:
        raise NotFound(f"event {event_id} not found on incident {incident_id}")
    return event


def events(
    session: Session,
    incident_id: int,
    *,
    after_id: int | None = None,
    pinned_only: bool = False,
    limit: int = 1000,
) -> list[TimelineEventRow]:
    """Return an incident's events oldest first, optionally only those after `after_id`."""
    stmt = select(TimelineEventRow).where(TimelineEventRow.incident_id == incident_id)
    if after_id is not None:
        stmt = stmt.where(TimelineEventRow.id > after_id)
    if pinned_only:
        stmt = stmt.where(TimelineEventRow.pinned.is_(True))
    return list(session.scalars(stmt.order_by(TimelineEventRow.id).limit(limit)))


def revisions(session: Session, event_ids: list[int]) -> dict[int, list[TimelineEventRevisionRow]]:
    """Return the earlier texts of the given events, oldest first."""
    out: dict[int, list[TimelineEventRevisionRow]] = {}
    if not event_ids:
        return out
    rows = session.scalars(
        select(TimelineEventRevisionRow)
        .where(TimelineEventRevisionRow.event_id.in_(event_ids))
        .order_by(TimelineEventRevisionRow.id)
    )
    for row in rows:
        out.setdefault(row.event_id, []).append(row)
    return out


def _lock_incident(session: Session, incident_id: int) -> IncidentRow:
    incident = session.scalars(
        select(IncidentRow).where(IncidentRow.id == incident_id).with_for_update()
    ).first()
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident
