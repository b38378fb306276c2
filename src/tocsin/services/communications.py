"""Stakeholder communication: the commander's updates (preview, send, list), the automatic
initial and resolution notices, and where an incident stands with its update cadence.

Decisions, written down once:
- An update that moves the incident to resolved (or closed) is sent as the resolution notice,
  and the automatic one for that resolution is then not sent again.
- The automatic initial notice answers incident.declared; incident.severity_changed sends the
  initial notice to the audiences the new severity adds (a P2 raised to P0 now tells the P0
  audiences), never twice to one audience. incident.resolved sends the resolution notice unless
  the incident is open again by the time it is handled.
- A status page audience gets no outbox message: its text is recorded on the timeline as the
  incident's public status (kind status_page_update) for the status page to publish.
- Sending records a stakeholder_update row, a timeline event and the outbox messages in the
  caller's transaction: all of it happens, or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core import communications as core
from tocsin.core import lifecycle
from tocsin.core.actors import Actor
from tocsin.core.incidents import Status, check_transition
from tocsin.services import incidents, outbox, timeline
from tocsin.services.comm_context import (
    Audience,
    CommConfig,
    IncidentFacts,
    UpdateText,
    incident_facts,
    known_kinds,
    load_config,
    next_update_at,
)
from tocsin.services.comm_messages import Rendered, deliver, render_for
from tocsin.services.comm_notices import NOTICE, on_lifecycle_event, reactor
from tocsin.storage.comm_tables import StakeholderUpdateRow
from tocsin.storage.tables import IncidentRow

__all__ = ["on_lifecycle_event", "reactor"]  # the lifecycle reactor lives in comm_notices


@dataclass(frozen=True, slots=True)
class AudiencePreview:
    """One audience's copy of a message, as it would go out."""

    audience: str
    type: str
    name: str
    title: str
    body: str
    recipients: list[str]
    template: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Preview:
    """A message before it is sent: its kind and every audience's rendering."""

    incident_id: int
    kind: str
    status: str
    audiences: list[AudiencePreview]
    next_update_at: datetime | None


@dataclass(frozen=True, slots=True)
class Sent:
    """A sent update: its row, the renderings and how many outbox messages were queued."""

    update: StakeholderUpdateRow
    preview: Preview
    queued: int
    messages: list[dict[str, Any]] = field(default_factory=list)


def update_kind(status: Status | None) -> str:
    """Return the message kind of an update that moves the incident to `status`."""
    return core.RESOLUTION if status in (Status.RESOLVED, Status.CLOSED) else core.UPDATE


def preview_update(
    session: Session,
    incident_id: int,
    now: datetime,
    text: UpdateText,
    *,
    status: Status | None = None,
    base_url: str = "",
) -> Preview:
    """Render an update for every audience it would reach, changing nothing."""
    config = load_config(session)
    facts = incident_facts(session, incident_id, base_url=base_url, config=config)
    if status is not None:
        check_transition(Status(facts.incident.status), status)
        facts.incident = _as_if(facts.incident, status, now)
    kind = update_kind(status)
    rendered = _render_all(session, config, facts, kind, now, text)
    return _preview(facts, kind, now, rendered)


def send_update(
    session: Session,
    actor: Actor,
    now: datetime,
    incident_id: int,
    text: UpdateText,
    *,
    status: Status | None = None,
    base_url: str = "",
) -> Sent:
    """Send the commander's update to every audience, in the caller's transaction."""
    incident = incidents.get(session, incident_id, for_update=True)
    if status is not None and status != Status(incident.status):
        incidents.change_status(session, actor, now, incident_id, status)
        session.flush()
    kind = update_kind(status)
    config = load_config(session)
    facts = incident_facts(session, incident_id, base_url=base_url, config=config)
    row = StakeholderUpdateRow(
        incident_id=incident_id,
        kind=kind,
        message=text.message,
        next_steps=text.next_steps,
        eta=text.eta,
        status=status.value if status is not None else None,
        audiences=[],
        messages=0,
        created_at=now,
        created_by=actor.id,
        source=actor.source,
    )
    session.add(row)
    session.flush()
    rendered = _render_all(session, config, facts, kind, now, text)
    messages = deliver(session, facts, rendered, actor, kind, f"u{row.id}", now, text, row.id)
    queued = outbox.enqueue_many(session, messages)
    row.audiences = [r.audience.id for r in rendered]
    row.messages = len(queued)
    told = ", ".join(row.audiences) or "no audience"
    event_text = f"{NOTICE[kind]} to stakeholders ({told}): {text.message}"
    timeline.record(
        session, incident_id, actor, now, "stakeholder_update", event_text,
        {
            "update_id": row.id, "message_kind": kind, "audiences": row.audiences,
            "messages": len(queued), "status": row.status, "next_steps": text.next_steps,
            "eta": text.eta, "template_errors": [r.error for r in rendered if r.error],
        },
    )  # fmt: skip
    incident.version += 1
    incident.updated_at = now
    _emit_posted(session, actor, now, row)
    return Sent(row, _preview(facts, kind, now, rendered), len(queued), messages)


def _emit_posted(session: Session, actor: Actor, now: datetime, row: StakeholderUpdateRow) -> None:
    # The delivery helper's lifecycle service carries incident.update_posted to webhooks.
    from tocsin.services.lifecycle import emit

    emit(
        session,
        kind=lifecycle.INCIDENT_UPDATE_POSTED,
        subject_type=lifecycle.INCIDENT,
        subject_id=row.incident_id,
        actor=actor.id,
        now=now,
        data={
            "update_id": row.id,
            "message_kind": row.kind,
            "message": row.message,
            "status": row.status,
            "audiences": list(row.audiences),
        },
    )


def _render_all(
    session: Session,
    config: CommConfig,
    facts: IncidentFacts,
    kind: str,
    now: datetime,
    text: UpdateText,
) -> list[Rendered]:
    audiences = config.audiences_for(kind, facts.incident.severity, facts.service_ids)
    return [render_for(config, facts, a, kind=kind, now=now, text=text) for a in audiences]


def _preview(
    facts: IncidentFacts, kind: str, now: datetime, rendered: Sequence[Rendered]
) -> Preview:
    return Preview(
        incident_id=facts.incident.id,
        kind=kind,
        status=facts.incident.status,
        audiences=[
            AudiencePreview(
                audience=r.audience.id,
                type=r.audience.type,
                name=r.audience.name or r.audience.id,
                title=r.title,
                body=r.body,
                recipients=_shown_recipients(r.audience, facts),
                template=r.template,
                error=r.error,
            )
            for r in rendered
        ],
        next_update_at=next_update_at(facts, kind, now),
    )


def _shown_recipients(audience: Audience, facts: IncidentFacts) -> list[str]:
    """Return who an audience reaches, as a preview names them (no secrets, no lookups)."""
    settings = audience.settings
    if audience.type in ("email", "sms"):
        return [str(t) for t in settings.get("to") or []]
    if audience.type == "slack":
        return [str(settings.get("channel") or facts.channel)]
    if audience.type in ("webhook", "teams", "mattermost"):
        return [urlsplit(str(settings.get("url"))).hostname or "webhook"]
    if audience.type == "people":
        return [
            f"{key[:-1]}:{value}"
            for key in ("users", "teams", "schedules")
            for value in settings.get(key) or []
        ]
    return ["status page"]


def _as_if(incident: IncidentRow, status: Status, now: datetime) -> IncidentRow:
    """Return a detached copy of the incident as it would be in `status` (for previews)."""
    values = {c.name: getattr(incident, c.name) for c in IncidentRow.__table__.columns}
    copy = IncidentRow(**values)
    copy.status = status.value
    if status in (Status.RESOLVED, Status.CLOSED):
        copy.resolved_at = incident.resolved_at or now
    return copy


# --- reading ---


@dataclass(frozen=True, slots=True)
class CommunicationState:
    """Where an incident stands: who hears about it, and when the next update is due."""

    incident_id: int
    audiences: dict[str, list[str]]
    audience_types: dict[str, str]
    update_every: str
    last_update_at: datetime | None
    next_update_at: datetime | None
    overdue_at: datetime | None
    overdue: bool
    due: bool


def communication_state(session: Session, incident_id: int, now: datetime) -> CommunicationState:
    """Return the audiences that apply to an incident and its update deadlines."""
    incidents.get(session, incident_id)
    config = load_config(session)
    facts = incident_facts(session, incident_id, config=config)
    kinds = {k: v for k, v in known_kinds(config, facts).items() if v}
    deadlines = (
        core.cadence(facts.update_every, facts.incident.declared_at, facts.last_update_at)
        if facts.is_open
        else None
    )
    return CommunicationState(
        incident_id=incident_id,
        audiences=kinds,
        audience_types={a: config.audiences[a].type for a in kinds},
        update_every=core.humanize(facts.update_every),
        last_update_at=facts.last_update_at,
        next_update_at=deadlines.due_at if deadlines else None,
        overdue_at=deadlines.overdue_at if deadlines else None,
        overdue=bool(deadlines and deadlines.overdue_at <= now),
        due=bool(deadlines and deadlines.due_at <= now),
    )


def list_updates(session: Session, incident_id: int) -> list[StakeholderUpdateRow]:
    """Return every stakeholder message sent about an incident, oldest first."""
    incidents.get(session, incident_id)
    return list(
        session.scalars(
            select(StakeholderUpdateRow)
            .where(StakeholderUpdateRow.incident_id == incident_id)
            .order_by(StakeholderUpdateRow.id)
        )
    )
