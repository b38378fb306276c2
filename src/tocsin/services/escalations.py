"""Escalations follow their subject: started when an alert group or incident needs a human,
acknowledged, resolved or handed over (group → incident) in the same transaction as the change
that causes it, so a committed acknowledgement can never be followed by another page.

Decisions, written down once:
- An alert group escalates when it starts firing (not while suppressed) and its service has a
  policy. High and low urgency both escalate; urgency picks people's notification rules.
- An incident escalates when declared on a service with a policy: the severity's policy from
  `escalation_policy_by_severity`, else the service's `escalation_policy`. A severity with
  `pages: true` is high urgency, otherwise low. respond_within becomes the SLA deadline.
- A group linked to an incident hands its escalation over (timing kept, nobody paged twice)
  unless the incident already has one; then the group's stops.
- An incident leaving `triggered` (acknowledged, investigating …) acknowledges its escalation;
  resolved or closed resolves it. Pages of a stopped escalation stop too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tocsin.services import wakeup
from tocsin.storage.oncall_tables import (
    EscalationPolicyRow,
    EscalationRow,
    NotificationLogRow,
    PageRow,
)
from tocsin.storage.tables import ServiceRow, SeverityRow

GROUP = "alert_group"
INCIDENT = "incident"


@dataclass(frozen=True, slots=True)
class Subject:
    """Something that can need a human: an alert group or an incident."""

    type: str
    id: int
    service_id: str | None
    severity: str | None
    urgency: str
    title: str


class _PolicyHolder(Protocol):
    escalation_policy_id: str | None
    severity_policies: Mapping[str, str] | None


# Built once: the ingest batch calls start() on every commit, and building an IN expression
# costs more than running it.
_SERVICE_POLICIES = select(
    ServiceRow.id, ServiceRow.escalation_policy_id, ServiceRow.severity_policies
).where(ServiceRow.id.in_(bindparam("ids", expanding=True)))
_RESPOND_WITHIN = select(SeverityRow.name, SeverityRow.respond_within_s).where(
    SeverityRow.name.in_(bindparam("names", expanding=True))
)


def policy_for(service: _PolicyHolder | None, severity: str | None) -> str | None:
    """Return the escalation policy a subject on `service` with `severity` follows."""
    if service is None:
        return None
    by_severity = {k.casefold(): v for k, v in (service.severity_policies or {}).items()}
    if severity and severity.casefold() in by_severity:
        return by_severity[severity.casefold()]
    return service.escalation_policy_id


def start(session: Session, subjects: Sequence[Subject], now: datetime) -> int:
    """Start an escalation for each subject whose service has a policy; return how many."""
    service_ids = sorted({s.service_id for s in subjects if s.service_id})
    if not service_ids:
        return 0
    services = {row.id: row for row in session.execute(_SERVICE_POLICIES, {"ids": service_ids})}
    chosen = [
        (subject, policy)
        for subject in subjects
        if (policy := policy_for(services.get(subject.service_id or ""), subject.severity))
    ]
    if not chosen:
        return 0
    names = sorted({s.severity for s, _ in chosen if s.severity})
    within = {
        name.casefold(): seconds
        for name, seconds in session.execute(_RESPOND_WITHIN, {"names": names})
    }
    rows: list[dict[str, Any]] = []
    for subject, policy in chosen:
        seconds = within.get((subject.severity or "").casefold())
        rows.append(
            {
                "subject_type": subject.type,
                "subject_id": subject.id,
                "policy_id": policy,
                "service_id": subject.service_id,
                "urgency": subject.urgency,
                "severity": subject.severity,
                "title": subject.title[:1024],
                "status": "active",
                "run": 0,
                "cycle": 0,
                "step": 0,
                "run_started_at": now,
                # Due at once: the engine fires step 0 (usually after: 0m) on its next cycle.
                "next_at": now,
                "sla_due_at": now + timedelta(seconds=seconds) if seconds else None,
                "created_at": now,
            }
        )
    is_sqlite = session.get_bind().dialect.name == "sqlite"
    dialect = sqlite if is_sqlite else postgresql
    statement = (
        dialect.insert(EscalationRow)
        .on_conflict_do_nothing(index_elements=["subject_type", "subject_id"])
        .returning(
            EscalationRow.id,
            EscalationRow.subject_type,
            EscalationRow.subject_id,
            EscalationRow.policy_id,
        )
    )
    # One statement per row: RETURNING with ON CONFLICT over executemany is not portable.
    started = [found for row in rows for found in session.execute(statement, row).all()]
    session.add_all(
        NotificationLogRow(
            at=now,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            escalation_id=row.id,
            kind="escalation_started",
            text=f"Escalation started (policy {row.policy_id})",
            detail={"policy": row.policy_id},
        )
        for row in started
    )
    if started and not is_sqlite:
        # Engines in other processes wake at commit (this process's engine is woken by the
        # caller, which knows its waker).
        wakeup.notify_engines(session)
    return len(started)


def acknowledge(
    session: Session, subject_type: str, subject_ids: Iterable[int], now: datetime, actor: str
) -> None:
    """Acknowledge the active escalations of these subjects and stop their pages."""
    _stop(session, subject_type, subject_ids, now, "acknowledged", actor)


def resolve(
    session: Session, subject_type: str, subject_ids: Iterable[int], now: datetime, actor: str
) -> None:
    """Resolve the escalations of these subjects and stop their pages."""
    _stop(session, subject_type, subject_ids, now, "resolved", actor)


def _stop(
    session: Session,
    subject_type: str,
    subject_ids: Iterable[int],
    now: datetime,
    status: str,
    actor: str,
) -> None:
    ids = list(subject_ids)
    if not ids:
        return
    open_statuses = ["active"] if status == "acknowledged" else ["active", "acknowledged"]
    found = session.execute(
        select(EscalationRow.id, EscalationRow.subject_id, EscalationRow.policy_id)
        .where(
            EscalationRow.subject_type == subject_type,
            EscalationRow.subject_id.in_(ids),
            EscalationRow.status.in_(open_statuses),
        )
        .with_for_update()
    ).all()
    if not found:
        return
    escalation_ids = [row.id for row in found]
    values: dict[str, Any] = {"status": status}
    if status == "acknowledged":
        values.update(acknowledged_at=now, acknowledged_by=actor)
        # The engine only needs to come back if the policy has an ack timeout.
        values["next_at"] = None
    else:
        values.update(resolved_at=now, next_at=None)
    session.execute(
        update(EscalationRow).where(EscalationRow.id.in_(escalation_ids)).values(**values)
    )
    if status == "acknowledged":
        _arm_ack_timeouts(session, escalation_ids, now)
    session.execute(
        update(PageRow)
        .where(PageRow.escalation_id.in_(escalation_ids), PageRow.status == "active")
        .values(status="stopped", next_at=None)
    )
    session.add_all(
        NotificationLogRow(
            at=now,
            subject_type=subject_type,
            subject_id=row.subject_id,
            escalation_id=row.id,
            kind=f"escalation_{status}",
            user_id=actor if "@" not in actor else None,
            text=f"Escalation {status} by {actor}; no more pages",
            detail={"actor": actor},
        )
        for row in found
    )


def _arm_ack_timeouts(session: Session, escalation_ids: list[int], now: datetime) -> None:
    rows = session.execute(
        select(EscalationRow.id, EscalationPolicyRow.ack_timeout_s)
        .join(EscalationPolicyRow, EscalationPolicyRow.id == EscalationRow.policy_id)
        .where(EscalationRow.id.in_(escalation_ids), EscalationPolicyRow.ack_timeout_s.is_not(None))
    ).all()
    for escalation_id, seconds in rows:
        assert seconds is not None
        session.execute(
            update(EscalationRow)
            .where(EscalationRow.id == escalation_id)
            .values(next_at=now + timedelta(seconds=seconds))
        )


def hand_over(session: Session, group_ids: Iterable[int], incident_id: int, now: datetime) -> bool:
    """Move a linked group's open escalation to the incident; return whether one moved.

    If the incident already escalates, the groups' escalations stop instead.
    """
    ids = list(group_ids)
    if not ids:
        return False
    existing = session.scalar(
        select(EscalationRow.id).where(
            EscalationRow.subject_type == INCIDENT, EscalationRow.subject_id == incident_id
        )
    )
    open_groups = session.execute(
        select(EscalationRow.id, EscalationRow.subject_id)
        .where(
            EscalationRow.subject_type == GROUP,
            EscalationRow.subject_id.in_(ids),
            EscalationRow.status.in_(["active", "acknowledged"]),
        )
        .order_by(EscalationRow.id)
    ).all()
    moved = False
    for escalation_id, group_id in open_groups:
        if existing is None and not moved:
            session.execute(
                update(EscalationRow)
                .where(EscalationRow.id == escalation_id)
                .values(subject_type=INCIDENT, subject_id=incident_id)
            )
            session.add(
                NotificationLogRow(
                    at=now,
                    subject_type=INCIDENT,
                    subject_id=incident_id,
                    escalation_id=escalation_id,
                    kind="escalation_handed_over",
                    text=f"Escalation continues from alert group {group_id}",
                    detail={"alert_group": group_id},
                )
            )
            moved = True
        else:
            resolve(session, GROUP, [group_id], now, "tocsin")
    return moved


def open_escalation(session: Session, subject_type: str, subject_id: int) -> EscalationRow | None:
    """Return the escalation of a subject, if it has one."""
    return session.scalars(
        select(EscalationRow).where(
            and_(EscalationRow.subject_type == subject_type, EscalationRow.subject_id == subject_id)
        )
    ).first()
