"""Checklist items of an incident, ticked with who and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.actors import Actor
from tocsin.core.errors import NotFound
from tocsin.services.timeline import record
from tocsin.storage.tables import ChecklistItemRow, IncidentRow


def items(session: Session, incident_id: int) -> list[ChecklistItemRow]:
    """Return an incident's checklist in order."""
    return list(
        session.scalars(
            select(ChecklistItemRow)
            .where(ChecklistItemRow.incident_id == incident_id)
            .order_by(ChecklistItemRow.position)
        )
    )


def tick(
    session: Session, actor: Actor, now: datetime, incident_id: int, item_id: int, done: bool
) -> ChecklistItemRow:
    """Mark an item done (or not done again); each change is on the timeline."""
    incident = session.scalars(
        select(IncidentRow).where(IncidentRow.id == incident_id).with_for_update()
    ).first()
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    item = session.get(ChecklistItemRow, item_id)
    if item is None or item.incident_id != incident_id:
        raise NotFound(f"checklist item {item_id} not found on incident {incident_id}")
    if item.done == done:
        return item
    item.done = done
    item.done_at = now if done else None
    item.done_by = actor.id if done else None
    record(
        session, incident_id, actor, now, "checklist_ticked" if done else "checklist_unticked",
        f"{'Done' if done else 'Not done'}: {item.text}", {"item_id": item.id, "done": done},
    )  # fmt: skip
    incident.version += 1
    incident.updated_at = now
    return item
