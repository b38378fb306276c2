"""Turn incident rows into API bodies, loading related rows for a whole page at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from tocsin.api.schemas import (
    ChecklistItemOut,
    EventOut,
    IncidentOut,
    MilestonesOut,
    RevisionOut,
)
from tocsin.core.incidents import Status, allowed_next, incident_reference
from tocsin.services import catalog, checklists, queries, timeline
from tocsin.services.incidents import Declared
from tocsin.storage.tables import ChecklistItemRow, IncidentRow, TimelineEventRow


def incidents_out(
    session: Session, rows: Sequence[IncidentRow | Row[Any]], *, with_checklist: bool = False
) -> list[IncidentOut]:
    """Serialise incidents with their services, roles and checklist progress."""
    # The related rows are read with Core statements, which do not autoflush: write out any
    # pending change (a new role, a ticked item) first. A no-op for read-only pages.
    session.flush()
    ids = [r.id for r in rows]
    services = queries.services_by_incident(session, ids)
    roles = queries.roles_by_incident(session, ids)
    progress = queries.checklist_progress(session, ids)
    respond_within = {s.name: s.respond_within for s in catalog.severities(session)}
    return [
        _incident(
            row,
            services=services[row.id],
            roles=roles[row.id],
            progress=progress[row.id],
            window=respond_within.get(row.severity),
            checklist=(
                [checklist_item_out(i) for i in checklists.items(session, row.id)]
                if with_checklist
                else None
            ),
        )
        for row in rows
    ]


def _incident(
    row: IncidentRow | Row[Any],
    *,
    services: list[str],
    roles: dict[str, str],
    progress: tuple[int, int],
    window: timedelta | None,
    checklist: list[ChecklistItemOut] | None,
) -> IncidentOut:
    status = Status(row.status)
    # model_construct: these values come from our own rows, already typed; validating
    # 50 of them again per page costs more than the query.
    return IncidentOut.model_construct(
        id=row.id,
        ref=incident_reference(row.id),
        slug=row.slug,
        title=row.title,
        description=row.description,
        severity=row.severity,
        status=status,
        allowed_next=list(allowed_next(status)),
        services=services,
        customer_impact=row.customer_impact,
        resolution=row.resolution,
        tags=list(row.tags or []),
        roles=roles,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        milestones=_milestones(row),
        respond_by=row.declared_at + window if window else None,
        checklist_done=progress[0],
        checklist_total=progress[1],
        checklist=checklist,
        url=f"/incidents/{row.id}",
    )


def _milestones(row: IncidentRow | Row[Any]) -> MilestonesOut:
    # Field by field: dataclasses.asdict deep-copies every datetime (40% of list CPU).
    return MilestonesOut.model_construct(
        detected=row.detected_at,
        declared=row.declared_at,
        acknowledged=row.acknowledged_at,
        mitigated=row.mitigated_at,
        resolved=row.resolved_at,
        closed=row.closed_at,
    )


def declared_out(declared: Declared) -> IncidentOut:
    """Serialise a just-declared incident from what was written, without reading it back."""
    row = declared.incident
    return _incident(
        row,
        services=sorted(declared.services),
        roles=dict(declared.roles),
        progress=(0, len(declared.checklist)),
        window=declared.severity.respond_within,
        checklist=[
            ChecklistItemOut.model_construct(
                id=item_id, text=text, severity=row.severity, done=False, done_at=None, done_by=None
            )
            for item_id, text in declared.checklist
        ],
    )


def incident_out(session: Session, row: IncidentRow) -> IncidentOut:
    return incidents_out(session, [row], with_checklist=True)[0]


def checklist_item_out(item: ChecklistItemRow) -> ChecklistItemOut:
    return ChecklistItemOut(
        id=item.id,
        text=item.text,
        severity=item.severity,
        done=item.done,
        done_at=item.done_at,
        done_by=item.done_by,
    )


def events_out(session: Session, events: Sequence[TimelineEventRow]) -> list[EventOut]:
    """Serialise timeline events with the earlier texts of edited notes."""
    revs = timeline.revisions(session, [e.id for e in events if e.edited_at is not None])
    return [
        EventOut(
            id=e.id,
            incident_id=e.incident_id,
            at=e.at,
            actor=e.actor,
            source=e.source,
            kind=e.kind,
            text=e.text,
            data=dict(e.data or {}),
            pinned=e.pinned,
            edited_at=e.edited_at,
            revisions=[
                RevisionOut(text=r.text, replaced_at=r.replaced_at, replaced_by=r.replaced_by)
                for r in revs.get(e.id, [])
            ],
        )
        for e in events
    ]
