"""The automatic stakeholder notices: the initial notice when an incident is declared (or
raised to a severity that tells more audiences) and the resolution notice when it is resolved,
as a reactor of the engine's lifecycle module. See services/communications.py for the rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core import communications as core
from tocsin.core import lifecycle
from tocsin.core.actors import Actor, Scope
from tocsin.core.lifecycle import LifecycleEvent
from tocsin.services import timeline
from tocsin.services.comm_context import (
    Audience,
    CommConfig,
    IncidentFacts,
    audiences_told,
    incident_facts,
    load_config,
    service_ids,
)
from tocsin.services.comm_messages import deliver, render_for
from tocsin.storage.comm_tables import StakeholderUpdateRow
from tocsin.storage.tables import IncidentRow

ENGINE_ACTOR = Actor(id="tocsin", scopes=frozenset({Scope.RESPOND}), source="engine")
NOTICE = {core.INITIAL: "Initial notice", core.UPDATE: "Update", core.RESOLUTION: "Resolution"}
_KINDS = {
    lifecycle.INCIDENT_DECLARED: core.INITIAL,
    lifecycle.INCIDENT_SEVERITY_CHANGED: core.INITIAL,
    lifecycle.INCIDENT_RESOLVED: core.RESOLUTION,
}


def on_lifecycle_event(
    session: Session, event: LifecycleEvent, now: datetime, *, base_url: str = ""
) -> list[dict[str, Any]]:
    """Return the outbox messages of the automatic notice an event calls for (a reactor)."""
    found = _notice(session, event, base_url)
    if found is None:
        return []
    kind, config, facts, audiences = found
    row = StakeholderUpdateRow(
        incident_id=event.subject_id, kind=kind, audiences=[a.id for a in audiences],
        messages=0, event_id=event.id, created_at=now, created_by=ENGINE_ACTOR.id,
        source=ENGINE_ACTOR.source, message="", next_steps="", eta="",
    )  # fmt: skip
    session.add(row)
    rendered = [render_for(config, facts, a, kind=kind, now=now) for a in audiences]
    messages = deliver(session, facts, rendered, ENGINE_ACTOR, kind, f"e{event.id}", now)
    row.messages = len(messages)
    names = ", ".join(a.id for a in audiences)
    timeline.record(
        session, event.subject_id, ENGINE_ACTOR, now, "stakeholder_update",
        f"{NOTICE[kind]} sent to {names}",
        {"message_kind": kind, "audiences": row.audiences, "messages": len(messages),
         "event": event.kind, "template_errors": [r.error for r in rendered if r.error]},
    )  # fmt: skip
    return messages


def _notice(
    session: Session, event: LifecycleEvent, base_url: str
) -> tuple[str, CommConfig, IncidentFacts, list[Audience]] | None:
    """Return what an event's notice needs (kind, config, incident, audiences), or None."""
    kind = _KINDS.get(event.kind) if event.subject_type == lifecycle.INCIDENT else None
    if kind is None:
        return None
    # Cheap checks first: most events of most setups tell nobody (alert storms declare many
    # incidents), and those should cost a query or two, not a full read of the incident.
    config = load_config(session)
    incident = session.get(IncidentRow, event.subject_id)
    if incident is None or not config.audiences_for(
        kind, incident.severity, service_ids(session, incident.id)
    ):
        return None
    answered = select(StakeholderUpdateRow.id).where(StakeholderUpdateRow.event_id == event.id)
    if session.scalar(answered) is not None:
        return None  # handled before (a repeated event): nothing twice
    facts = incident_facts(session, event.subject_id, base_url=base_url, config=config)
    audiences = config.audiences_for(kind, facts.incident.severity, facts.service_ids)
    if kind == core.RESOLUTION and (
        facts.is_open or _resolution_sent(session, event.subject_id, event.at)
    ):
        return None
    if event.kind == lifecycle.INCIDENT_SEVERITY_CHANGED:
        told = audiences_told(session, event.subject_id, [core.INITIAL])
        audiences = [a for a in audiences if a.id not in told]
    return (kind, config, facts, audiences) if audiences else None


Reactor = Callable[[Session, LifecycleEvent, datetime], list[dict[str, Any]]]


def reactor(base_url: str) -> Reactor:
    """Return on_lifecycle_event with links to `base_url`, as the lifecycle module calls it."""

    def react(session: Session, event: LifecycleEvent, now: datetime) -> list[dict[str, Any]]:
        return on_lifecycle_event(session, event, now, base_url=base_url)

    return react


def _resolution_sent(session: Session, incident_id: int, since: datetime) -> bool:
    """Return True when the commander already sent this resolution as their update."""
    found = session.scalar(
        select(StakeholderUpdateRow.id).where(
            StakeholderUpdateRow.incident_id == incident_id,
            StakeholderUpdateRow.kind == core.RESOLUTION,
            StakeholderUpdateRow.event_id.is_(None),
            StakeholderUpdateRow.created_at >= since,
        )
    )
    return found is not None
