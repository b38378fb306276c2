"""Incident use cases: declare, change, acknowledge, roles, milestones.

Every change writes a timeline event in the same transaction, bumps the incident's version and
takes a row lock first (FOR UPDATE on PostgreSQL; SQLite writers are serialised by BEGIN
IMMEDIATE), so two concurrent updates never lose either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tocsin.core import lifecycle as kinds
from tocsin.core.actors import Actor, Scope
from tocsin.core.errors import DomainError, Forbidden, InvalidInput, NotFound, VersionConflict
from tocsin.core.incidents import (
    Milestone,
    Milestones,
    Status,
    check_transition,
    incident_slug,
    milestones_after_transition,
)
from tocsin.core.severity import Severity, resolve_severity
from tocsin.services import catalog, escalations, lifecycle
from tocsin.services.timeline import record
from tocsin.storage.tables import (
    ChecklistItemRow,
    IncidentRoleAssignmentRow,
    IncidentRow,
    IncidentServiceRow,
    SlugCounterRow,
    TimelineEventRow,
)

_MILESTONE_COLUMNS = {
    Milestone.DETECTED: "detected_at",
    Milestone.DECLARED: "declared_at",
    Milestone.ACKNOWLEDGED: "acknowledged_at",
    Milestone.MITIGATED: "mitigated_at",
    Milestone.RESOLVED: "resolved_at",
    Milestone.CLOSED: "closed_at",
}


@dataclass(slots=True)
class Declaration:
    """What a responder says when declaring an incident."""

    title: str
    severity: str
    description: str = ""
    services: Sequence[str] = ()
    customer_impact: str = ""
    tags: Sequence[str] = ()
    status: Status = Status.TRIGGERED
    detected_at: datetime | None = None
    roles: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Changes:
    """A partial update; None means 'leave as it is'."""

    title: str | None = None
    description: str | None = None
    severity: str | None = None
    status: Status | None = None
    services: Sequence[str] | None = None
    customer_impact: str | None = None
    resolution: str | None = None
    tags: Sequence[str] | None = None
    roles: dict[str, str | None] | None = None
    note: str | None = None


@dataclass(slots=True)
class Declared:
    """A new incident and what was written with it, so callers need not read it back."""

    incident: IncidentRow
    severity: Severity
    services: list[str]
    roles: dict[str, str]
    checklist: list[tuple[int, str]]


def declare(session: Session, actor: Actor, now: datetime, decl: Declaration) -> IncidentRow:
    """Open a new incident with its checklist, roles and first timeline event."""
    return declare_full(session, actor, now, decl).incident


def declare_full(session: Session, actor: Actor, now: datetime, decl: Declaration) -> Declared:
    """Declare one incident, returning the related rows too."""
    result = declare_many(session, [(actor, now, decl)])[0]
    if isinstance(result, Exception):
        raise result
    return result


@dataclass(slots=True)
class _Valid:
    index: int
    actor: Actor
    now: datetime
    decl: Declaration
    severity: Severity
    services: list[str]
    roles: dict[str, str]


def declare_many(
    session: Session,
    items: Sequence[tuple[Actor, datetime, Declaration]],
    *,
    escalate: bool = True,
) -> list[Declared | Exception]:
    """Declare a batch with one statement per table; a rejected item does not stop the rest.

    This is the hot path (group commit hands it every declaration queued meanwhile), so rows
    are written with executemany and the results are built from what was written.
    """
    results: list[Declared | Exception] = []
    valid: list[_Valid] = []
    for index, (actor, now, decl) in enumerate(items):
        try:
            valid.append(_validate(session, index, actor, now, decl))
            results.append(DomainError("pending"))
        except DomainError as exc:
            results.append(exc)
    if not valid:
        return results
    slugs = _next_slugs(session, [v.now for v in valid])
    rows = [
        {
            "slug": slug,
            "title": v.decl.title,
            "description": v.decl.description,
            "severity": v.severity.name,
            "status": Status.TRIGGERED.value,
            "customer_impact": v.decl.customer_impact,
            "resolution": "",
            "tags": _clean_tags(v.decl.tags),
            "created_by": v.actor.id,
            "version": 1,
            "created_at": v.now,
            "updated_at": v.now,
            "detected_at": v.decl.detected_at or v.now,
            "declared_at": v.now,
        }
        for v, slug in zip(valid, slugs, strict=True)
    ]
    ids = session.scalars(
        insert(IncidentRow).returning(IncidentRow.id, sort_by_parameter_order=True), rows
    ).all()
    service_rows, role_rows, checklist_rows, events = [], [], [], []
    for incident_id, v in zip(ids, valid, strict=True):
        service_rows += [{"incident_id": incident_id, "service_id": s} for s in v.services]
        role_rows += [
            {"incident_id": incident_id, "role": r, "user_id": u, "assigned_at": v.now}
            for r, u in v.roles.items()
        ]
        checklist_rows += [
            {"incident_id": incident_id, "position": p, "text": t, "severity": v.severity.name}
            for p, t in enumerate(catalog.checklist_template(session, v.severity.name))
        ]
        events.append(
            _event(incident_id, v.actor, v.now, "declared",
                   f"Declared {v.severity.name} incident: {v.decl.title}",
                   {"severity": v.severity.name, "services": list(v.services)})
        )  # fmt: skip
        events += [
            _event(incident_id, v.actor, v.now, "role_assigned", f"{u} is {r}",
                   {"role": r, "old": None, "new": u})
            for r, u in v.roles.items()
        ]  # fmt: skip
    if service_rows:
        session.execute(insert(IncidentServiceRow), service_rows)
    if role_rows:
        session.execute(insert(IncidentRoleAssignmentRow), role_rows)
    checklist_ids: list[int] = []
    if checklist_rows:
        checklist_ids = list(
            session.scalars(
                insert(ChecklistItemRow).returning(
                    ChecklistItemRow.id, sort_by_parameter_order=True
                ),
                checklist_rows,
            )
        )
    session.execute(insert(TimelineEventRow), events)
    lifecycle.emit_many(session, [
        lifecycle.declared(i, v.actor.id, v.now, row, v.services, v.roles.get("commander"))
        for i, v, row in zip(ids, valid, rows, strict=True)
    ])  # fmt: skip
    position = 0
    for incident_id, v, row in zip(ids, valid, rows, strict=True):
        texts = catalog.checklist_template(session, v.severity.name)
        checklist = list(zip(checklist_ids[position : position + len(texts)], texts, strict=True))
        position += len(texts)
        if v.decl.status != Status.TRIGGERED:
            # Rare: declared straight into a later state; take the ORM path for the transition.
            incident = get(session, incident_id)
            _transition(session, incident, v.actor, v.now, v.decl.status)
            session.flush()
        else:
            # Built from the values just written; not attached to the session.
            incident = IncidentRow(id=incident_id, **row)
        results[v.index] = Declared(incident, v.severity, v.services, v.roles, checklist)
    if escalate:
        # Declared straight into a later status: somebody already has it, nobody is paged.
        declared = [
            r for r in results if isinstance(r, Declared) and r.incident.status == Status.TRIGGERED
        ]
        escalations.start(session, [incident_subject(d) for d in declared], valid[0].now)
    return results


def incident_subject(declared: Declared) -> escalations.Subject:
    """Return the escalation subject of a newly declared incident."""
    incident = declared.incident
    return escalations.Subject(
        escalations.INCIDENT,
        incident.id,
        declared.services[0] if declared.services else None,
        incident.severity,
        "high" if declared.severity.pages else "low",
        incident.title,
    )


def _validate(
    session: Session, index: int, actor: Actor, now: datetime, decl: Declaration
) -> _Valid:
    severity = resolve_severity(decl.severity, catalog.severities(session))
    services = catalog.check_services(session, decl.services)
    roles = dict(decl.roles)
    if actor.user_id and "commander" not in roles and catalog.role_exists(session, "commander"):
        # The declarer is the commander until someone else takes over: an incident never
        # starts without an owner when a human opened it.
        roles["commander"] = actor.user_id
    catalog.check_roles(session, roles)
    return _Valid(index, actor, now, decl, severity, services, roles)


def _event(
    incident_id: int, actor: Actor, now: datetime, kind: str, text: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": now,
        "actor": actor.id,
        "source": actor.source,
        "kind": kind,
        "text": text,
        "data": data,
        "pinned": False,
    }


def get(session: Session, incident_id: int, *, for_update: bool = False) -> IncidentRow:
    """Load one incident or raise NotFound."""
    stmt = select(IncidentRow).where(IncidentRow.id == incident_id)
    if for_update:
        stmt = stmt.with_for_update()
    incident = session.scalars(stmt).first()
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


def update_incident(
    session: Session,
    actor: Actor,
    now: datetime,
    incident_id: int,
    changes: Changes,
    *,
    expected_version: int | None = None,
) -> IncidentRow:
    """Apply a partial update, recording each change on the timeline."""
    incident = get(session, incident_id, for_update=True)
    if expected_version is not None and expected_version != incident.version:
        raise VersionConflict(expected_version, incident.version)
    changed = False
    for name in ("title", "description", "customer_impact", "resolution"):
        value = getattr(changes, name)
        if value is not None and value != getattr(incident, name):
            old = getattr(incident, name)
            setattr(incident, name, value)
            record(
                session, incident.id, actor, now, "field_changed",
                f"{name.replace('_', ' ').capitalize()} changed",
                {"field": name, "old": old, "new": value},
            )  # fmt: skip
            changed = True
    if changes.tags is not None:
        tags = _clean_tags(changes.tags)
        if tags != list(incident.tags or []):
            record(
                session, incident.id, actor, now, "field_changed", "Tags changed",
                {"field": "tags", "old": list(incident.tags or []), "new": tags},
            )  # fmt: skip
            incident.tags = tags
            changed = True
    if changes.severity is not None:
        changed |= _change_severity(session, incident, actor, now, changes.severity)
    if changes.services is not None:
        changed |= _change_services(session, incident, actor, now, changes.services)
    if changes.roles is not None:
        catalog.check_roles(session, {r: u for r, u in changes.roles.items() if u is not None})
        for role, user in changes.roles.items():
            changed |= _set_role(session, incident, actor, now, role, user)
    if changes.status is not None:
        changed |= _transition(session, incident, actor, now, changes.status, changes.note)
    elif changes.note:
        record(session, incident.id, actor, now, "note", changes.note)
        changed = True
    if changed:
        _touch(incident, now)
    return incident


def acknowledge(session: Session, actor: Actor, now: datetime, incident_id: int) -> IncidentRow:
    """Record that a responder has the incident; a triggered incident moves to investigating."""
    incident = get(session, incident_id, for_update=True)
    if incident.status in (Status.RESOLVED, Status.CLOSED):
        check_transition(Status(incident.status), Status.INVESTIGATING)
    if incident.acknowledged_at is not None and incident.status != Status.TRIGGERED:
        return incident
    record(session, incident.id, actor, now, "acknowledged", f"Acknowledged by {actor.id}")
    if incident.status == Status.TRIGGERED:
        _transition(session, incident, actor, now, Status.INVESTIGATING)
    else:
        incident.acknowledged_at = now
        escalations.acknowledge(session, escalations.INCIDENT, [incident.id], now, actor.id)
    lifecycle.incident_changed(session, incident, actor.id, now, kinds.INCIDENT_ACKNOWLEDGED)
    _touch(incident, now)
    return incident


def change_status(
    session: Session,
    actor: Actor,
    now: datetime,
    incident_id: int,
    status: Status,
    *,
    note: str | None = None,
    resolution: str | None = None,
) -> IncidentRow:
    """Move an incident to `status`, optionally with a note and (on resolve) a resolution."""
    return update_incident(
        session, actor, now, incident_id, Changes(status=status, note=note, resolution=resolution)
    )


def assign_role(
    session: Session, actor: Actor, now: datetime, incident_id: int, role: str, user: str | None
) -> IncidentRow:
    """Give `role` to `user`, or clear it when user is None."""
    return update_incident(session, actor, now, incident_id, Changes(roles={role: user}))


def correct_milestone(
    session: Session,
    actor: Actor,
    now: datetime,
    incident_id: int,
    milestone: Milestone,
    at: datetime | None,
    reason: str,
) -> IncidentRow:
    """Set a milestone timestamp after the fact; only the commander or an admin may."""
    incident = get(session, incident_id, for_update=True)
    commander = session.scalar(
        select(IncidentRoleAssignmentRow.user_id).where(
            IncidentRoleAssignmentRow.incident_id == incident_id,
            IncidentRoleAssignmentRow.role == "commander",
        )
    )
    if not actor.can(Scope.ADMIN) and (actor.user_id is None or actor.user_id != commander):
        raise Forbidden("only the incident commander or an admin may correct milestones")
    if not reason.strip():
        raise InvalidInput("a correction needs a reason", field="reason")
    if milestone == Milestone.DECLARED and at is None:
        raise InvalidInput("the declared milestone cannot be cleared", field="at")
    column = _MILESTONE_COLUMNS[milestone]
    old: datetime | None = getattr(incident, column)
    setattr(incident, column, at)
    record(
        session, incident.id, actor, now, "milestone_corrected",
        f"{milestone.value.capitalize()} time corrected: {reason}",
        {
            "milestone": milestone.value,
            "old": old.isoformat() if old else None,
            "new": at.isoformat() if at else None,
            "reason": reason,
        },
    )  # fmt: skip
    _touch(incident, now)
    return incident


def milestones_of(incident: IncidentRow) -> Milestones:
    return Milestones(
        detected=incident.detected_at,
        declared=incident.declared_at,
        acknowledged=incident.acknowledged_at,
        mitigated=incident.mitigated_at,
        resolved=incident.resolved_at,
        closed=incident.closed_at,
    )


# --- internals ---


def _touch(incident: IncidentRow, now: datetime) -> None:
    incident.version += 1
    incident.updated_at = now


def _transition(
    session: Session,
    incident: IncidentRow,
    actor: Actor,
    now: datetime,
    status: Status,
    note: str | None = None,
) -> bool:
    current = Status(incident.status)
    check_transition(current, status)
    if status == current:
        if note:
            record(session, incident.id, actor, now, "note", note)
            return True
        return False
    after = milestones_after_transition(milestones_of(incident), status, now)
    incident.status = status.value
    incident.acknowledged_at = after.acknowledged
    if status in (Status.RESOLVED, Status.CLOSED):
        escalations.resolve(session, escalations.INCIDENT, [incident.id], now, actor.id)
    elif status != Status.TRIGGERED:
        escalations.acknowledge(session, escalations.INCIDENT, [incident.id], now, actor.id)
    incident.mitigated_at = after.mitigated
    incident.resolved_at = after.resolved
    incident.closed_at = after.closed
    data: dict[str, Any] = {"old": current.value, "new": status.value}
    if note:
        data["note"] = note
    text = f"Status changed from {current.value} to {status.value}"
    record(
        session,
        incident.id,
        actor,
        now,
        "status_changed",
        text + (f": {note}" if note else ""),
        data,
    )
    # Every move is a status change; reaching resolved is also an event of its own.
    told = [kinds.INCIDENT_STATUS_CHANGED]
    if status == Status.RESOLVED:
        told.append(kinds.INCIDENT_RESOLVED)
    change = {"from": current.value, "to": status.value, "note": note}
    lifecycle.incident_changed(session, incident, actor.id, now, *told, extra=change)
    return True


def _change_severity(
    session: Session, incident: IncidentRow, actor: Actor, now: datetime, name: str
) -> bool:
    severity: Severity = resolve_severity(name, catalog.severities(session))
    if severity.name == incident.severity:
        return False
    old = incident.severity
    incident.severity = severity.name
    record(
        session, incident.id, actor, now, "severity_changed",
        f"Severity changed from {old} to {severity.name}",
        {"old": old, "new": severity.name},
    )  # fmt: skip
    lifecycle.incident_changed(session, incident, actor.id, now, kinds.INCIDENT_SEVERITY_CHANGED,
                               extra={"from": old, "to": severity.name})  # fmt: skip
    # The new level's checklist items join the list; ticked items of the old level stay.
    _add_checklist(session, incident.id, severity.name)
    return True


def _change_services(
    session: Session, incident: IncidentRow, actor: Actor, now: datetime, wanted: Sequence[str]
) -> bool:
    services = catalog.check_services(session, wanted)
    current = set(
        session.scalars(
            select(IncidentServiceRow.service_id).where(
                IncidentServiceRow.incident_id == incident.id
            )
        )
    )
    added = [s for s in services if s not in current]
    removed = sorted(current - set(services))
    if not added and not removed:
        return False
    if added:
        session.execute(
            insert(IncidentServiceRow),
            [{"incident_id": incident.id, "service_id": s} for s in added],
        )
    if removed:
        session.execute(
            delete(IncidentServiceRow).where(
                IncidentServiceRow.incident_id == incident.id,
                IncidentServiceRow.service_id.in_(removed),
            )
        )
    record(
        session, incident.id, actor, now, "services_changed", "Affected services changed",
        {"added": added, "removed": removed},
    )  # fmt: skip
    return True


def _set_role(
    session: Session,
    incident: IncidentRow,
    actor: Actor,
    now: datetime,
    role: str,
    user: str | None,
) -> bool:
    catalog.check_role_name(session, role)
    existing = session.get(IncidentRoleAssignmentRow, (incident.id, role))
    old = existing.user_id if existing else None
    if old == user:
        return False
    if user is None:
        assert existing is not None
        session.delete(existing)
        record(
            session, incident.id, actor, now, "role_unassigned", f"{role} role cleared (was {old})",
            {"role": role, "old": old, "new": None},
        )  # fmt: skip
        return True
    if existing is None:
        session.add(
            IncidentRoleAssignmentRow(
                incident_id=incident.id, role=role, user_id=user, assigned_at=now
            )
        )
        text = f"{user} is {role}"
    else:
        existing.user_id = user
        existing.assigned_at = now
        text = f"{role} reassigned from {old} to {user}"
    record(
        session,
        incident.id,
        actor,
        now,
        "role_assigned",
        text,
        {"role": role, "old": old, "new": user},
    )
    return True


def _add_checklist(
    session: Session, incident_id: int, severity: str, *, fresh: bool = False
) -> list[tuple[int, str]]:
    """Add the severity's checklist items the incident lacks; return the new (id, text) pairs."""
    template = catalog.checklist_template(session, severity)
    if not template:
        return []
    have: set[str] = set()
    if not fresh:
        have = set(
            session.scalars(
                select(ChecklistItemRow.text).where(ChecklistItemRow.incident_id == incident_id)
            )
        )
    start = len(have)
    texts = [t for t in template if t not in have]
    if not texts:
        return []
    rows = [
        {"incident_id": incident_id, "position": start + i, "text": text, "severity": severity}
        for i, text in enumerate(texts)
    ]
    ids = session.scalars(
        insert(ChecklistItemRow).returning(ChecklistItemRow.id, sort_by_parameter_order=True), rows
    ).all()
    return list(zip(ids, texts, strict=True))


def _next_slugs(session: Session, times: Sequence[datetime]) -> list[str]:
    """Take the next numbers of each UTC day; the counter row serialises concurrent declarations."""
    wanted: dict[date, int] = {}
    for t in times:
        wanted[t.date()] = wanted.get(t.date(), 0) + 1
    last: dict[date, int] = {day: _reserve(session, day, count) for day, count in wanted.items()}
    taken: dict[date, int] = {day: last[day] - wanted[day] for day in wanted}
    slugs = []
    for t in times:
        taken[t.date()] += 1
        slugs.append(incident_slug(t.date(), taken[t.date()]))
    return slugs


def _reserve(session: Session, day: date, count: int) -> int:
    """Add `count` to the day's counter and return its new value."""
    key = day.isoformat()
    for _attempt in range(3):
        number: int | None = session.scalar(
            update(SlugCounterRow)
            .where(SlugCounterRow.day == key)
            .values(last=SlugCounterRow.last + count)
            .returning(SlugCounterRow.last)
        )
        if number is not None:
            return number
        try:
            with session.begin_nested():
                session.execute(insert(SlugCounterRow).values(day=key, last=count))
            return count
        except IntegrityError:
            continue  # another transaction created the day's counter first; add to it
    raise RuntimeError("could not allocate an incident slug")


def _clean_tags(tags: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = tag.strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)
