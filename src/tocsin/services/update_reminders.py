"""Reminders of the update cadence: who hears that a stakeholder update is due (the commander)
or overdue (the next escalation step, else the commander's team), and what they are told."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core import communications as core
from tocsin.core import escalation
from tocsin.core.incidents import incident_reference
from tocsin.services import escalations, schedules
from tocsin.services.comm_context import IncidentFacts
from tocsin.services.comm_messages import Recipient, people_recipients
from tocsin.services.stakeholder_templates import format_datetime
from tocsin.storage.oncall_tables import EscalationStepRow
from tocsin.storage.tables import ServiceRow, TeamMemberRow

log = logging.getLogger("tocsin.cadence")
DUE = "due"
OVERDUE = "overdue"
KINDS = {DUE: "update_reminder", OVERDUE: "update_overdue"}


def overdue_audience(
    session: Session, facts: IncidentFacts, now: datetime
) -> tuple[list[str], str]:
    """Return who is told of an overdue update, and why them (for the timeline)."""
    row = escalations.open_escalation(session, escalations.INCIDENT, facts.incident.id)
    if row is not None:
        steps = list(
            session.scalars(
                select(EscalationStepRow)
                .where(EscalationStepRow.policy_id == row.policy_id)
                .order_by(EscalationStepRow.position)
            )
        )
        index = core.next_step_index(row.step, row.cycle, row.run, len(steps))
        if index is not None:
            users = escalation.expand_targets(
                steps[index].targets,
                lambda s: _on_call(session, s, now),
                lambda t: team_members(session, [t]),
            )
            return list(users), f"escalation step {index + 1} of {row.policy_id}"
    commander = facts.roles.get("commander")
    teams = _commander_teams(session, facts, commander)
    members = [u for u in team_members(session, teams) if u != commander]
    return members, f"team {', '.join(teams)}" if teams else "nobody (no escalation, no team)"


def _on_call(session: Session, schedule_id: str, now: datetime) -> tuple[str, ...]:
    try:
        return schedules.on_call(session, schedule_id, now)
    except Exception:  # a broken schedule must not stop the other targets
        log.exception("schedule %s cannot be evaluated", schedule_id)
        return ()


def team_members(session: Session, teams: Sequence[str]) -> list[str]:
    """Return the members of these teams, in team order, each once."""
    if not teams:
        return []
    rows = session.execute(
        select(TeamMemberRow.team_id, TeamMemberRow.user_id)
        .where(TeamMemberRow.team_id.in_(list(teams)))
        .order_by(TeamMemberRow.position)
    ).all()
    ordered = sorted(rows, key=lambda r: list(teams).index(r.team_id))
    return list(dict.fromkeys(r.user_id for r in ordered))


def _commander_teams(session: Session, facts: IncidentFacts, commander: str | None) -> list[str]:
    """Return the commander's teams, those owning the incident's services first; without a
    commander, the teams of the services."""
    found = session.scalars(
        select(ServiceRow.team_id).where(
            ServiceRow.id.in_(facts.service_ids), ServiceRow.team_id.is_not(None)
        )
    )
    owners = [t for t in dict.fromkeys(found) if t]
    if commander is None:
        return owners
    mine = list(
        session.scalars(select(TeamMemberRow.team_id).where(TeamMemberRow.user_id == commander))
    )
    return [t for t in owners if t in mine] + sorted(t for t in mine if t not in owners)


def reminder_text(
    facts: IncidentFacts, stage: str, due_at: datetime, last: datetime
) -> tuple[str, str]:
    """Return the title and body of a due or overdue reminder."""
    incident = facts.incident
    ref = incident_reference(incident.id)
    every = core.humanize(facts.update_every)
    commander = facts.commander
    if stage == DUE:
        title = f"Stakeholder update due: {ref} {incident.title}"
        lines = [
            f"The next stakeholder update for {ref} ({incident.severity}) is due now "
            f"({format_datetime(due_at)}; every {every}).",
            f"Last update: {format_datetime(last)}.",
        ]
    else:
        title = f"Stakeholder update overdue: {ref} {incident.title}"
        lines = [
            f"No stakeholder update for {ref} ({incident.severity}) since "
            f"{format_datetime(last)}; one was due at {format_datetime(due_at)} (every {every}).",
            f"Incident commander: {commander.name if commander else 'nobody assigned'}.",
        ]
    lines += [
        "",
        f"Post it: {facts.url()}",
        f"or: tocsin incident update {incident.id} --message '…'",
    ]
    return title, "\n".join(lines)


def reminder_messages(
    session: Session,
    facts: IncidentFacts,
    users: Sequence[str],
    *,
    stage: str,
    due_at: datetime,
    last: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return the outbox messages reminding `users` through their contact methods."""
    title, body = reminder_text(facts, stage, due_at, last)
    stamp = int(due_at.timestamp())
    return [
        {
            "key": f"cadence:{facts.incident.id}:{stamp}:{stage}:{target.name}"[:200],
            "kind": KINDS[stage],
            "channel": target.channel,
            "destination": target.destination,
            "title": title,
            "body": body,
            "payload": _payload(facts, target, stage, due_at, title, body),
            "now": now,
            "user_id": target.user_id,
            "contact_method_id": target.contact_method_id,
            "subject_type": "incident",
            "subject_id": facts.incident.id,
        }
        for target in people_recipients(session, users)
    ]


def _payload(
    facts: IncidentFacts, target: Recipient, stage: str, due_at: datetime, title: str, body: str
) -> dict[str, Any]:
    if target.channel == "email":
        return {"email": {"html": None, "thread": f"incident-{facts.incident.id}"}}
    if target.channel == "webhook":
        return {
            "webhook": {
                "body": {
                    "type": f"incident.{KINDS[stage]}",
                    "incident": {"id": facts.incident.id, "url": facts.url()},
                    "due_at": due_at.isoformat(),
                    "title": title,
                    "text": body,
                },
                "secret": None,
            }
        }
    return {}
