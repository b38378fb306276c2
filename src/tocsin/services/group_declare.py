"""Declare incidents from alert groups (automatically by rule, or by a responder)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from tocsin.core.actors import SYSTEM, Actor
from tocsin.services import escalations, incidents
from tocsin.services.alerting_config import alerting_config
from tocsin.services.incidents import incident_subject
from tocsin.storage.tables import TimelineEventRow


def declare_groups(
    session: Session, groups: list[dict[str, Any]], now: datetime, *, actor: Actor = SYSTEM
) -> None:
    """Declare one incident per alert group (rows as dicts; sets their incident_id)."""
    config = alerting_config(session)
    items = []
    for row in groups:
        severity = row["incident_severity"] or (config.severities[0] if config.severities else "")
        decl = incidents.Declaration(
            title=row["title"][:300],
            severity=severity,
            description=f"Declared from alert group {row['id']}.",
            services=[row["service_id"]],
        )
        items.append((actor, now, decl))
    # Escalation is settled below: a group that already pages hands its escalation over.
    results = incidents.declare_many(session, items, escalate=False)
    events = []
    for row, result in zip(groups, results, strict=True):
        if isinstance(result, Exception):
            raise result
        incident_id = result.incident.id
        row["incident_id"] = incident_id
        if not escalations.hand_over(session, [row["id"]], incident_id, now):
            escalations.start(session, [incident_subject(result)], now)
        events.append(
            {
                "incident_id": incident_id,
                "at": now,
                "actor": actor.id,
                "source": actor.source,
                "kind": "alert_group_linked",
                "text": f"Alert group {row['id']} linked: {row['title']}",
                "data": {"alert_group": row["id"]},
                "pinned": False,
            }
        )
    session.execute(insert(TimelineEventRow), events)
