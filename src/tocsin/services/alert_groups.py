"""What responders do to alert groups: acknowledge, resolve, silence, declare, merge.

Silences and maintenance windows created here live beside the ones from config (those carry
a config_position; these never do, so `tocsin apply` leaves them alone).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from tocsin.core import lifecycle as kinds
from tocsin.core.actors import Actor
from tocsin.core.alerts import AlertStatus, parse_matchers
from tocsin.core.errors import IllegalTransition, InvalidInput, NotFound
from tocsin.core.incidents import Status
from tocsin.services import (
    alerting_config,
    catalog,
    escalations,
    incidents,
    inhibit_sources,
    lifecycle,
    timeline,
)
from tocsin.services.ingest import declare_groups
from tocsin.storage.tables import (
    AlertGroupRow,
    AlertLogRow,
    AlertRow,
    MaintenanceWindowRow,
    SilenceRow,
)

_OPEN = (AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value, AlertStatus.SUPPRESSED.value)


def get_group(session: Session, group_id: int, *, for_update: bool = False) -> AlertGroupRow:
    """Load one alert group or raise NotFound."""
    stmt = select(AlertGroupRow).where(AlertGroupRow.id == group_id)
    if for_update:
        stmt = stmt.with_for_update()
    group = session.scalars(stmt).first()
    if group is None:
        raise NotFound(f"alert group {group_id} not found")
    return group


def _log(
    session: Session, group: AlertGroupRow, actor: Actor, now: datetime, kind: str, text: str
) -> None:
    session.execute(
        insert(AlertLogRow),
        [
            {
                "alert_id": None,
                "group_id": group.id,
                "payload_id": None,
                "at": now,
                "kind": kind,
                "actor": actor.id,
                "text": text,
            }
        ],
    )


def _log_alerts(
    session: Session, group: AlertGroupRow, actor: Actor, now: datetime, kind: str, ids: list[int]
) -> None:
    if ids:
        session.execute(
            insert(AlertLogRow),
            [
                {
                    "alert_id": i,
                    "group_id": group.id,
                    "payload_id": None,
                    "at": now,
                    "kind": kind,
                    "actor": actor.id,
                    "text": "",
                }
                for i in ids
            ],
        )


def _incident_note(
    session: Session, group: AlertGroupRow, actor: Actor, now: datetime, kind: str, text: str
) -> None:
    if group.incident_id is not None:
        timeline.record(
            session, group.incident_id, actor, now, kind, text, {"alert_group": group.id}
        )


def acknowledge(session: Session, actor: Actor, now: datetime, group_id: int) -> AlertGroupRow:
    """Acknowledge a group and its firing alerts; alerts arriving later join acknowledged."""
    group = get_group(session, group_id, for_update=True)
    if group.status == AlertStatus.RESOLVED:
        raise IllegalTransition(group.status, "acknowledged", [])
    if group.acknowledged_at is None:
        ids = list(
            session.scalars(
                select(AlertRow.id).where(
                    AlertRow.group_id == group.id, AlertRow.status == AlertStatus.FIRING.value
                )
            )
        )
        session.execute(
            update(AlertRow)
            .where(AlertRow.group_id == group.id, AlertRow.status == AlertStatus.FIRING.value)
            .values(status=AlertStatus.ACKNOWLEDGED.value, acknowledged_at=now)
        )
        group.acknowledged_at = now
        group.acknowledged_by = actor.id
        inhibit_sources.forget_after_commit(session)
        if group.status == AlertStatus.FIRING:
            group.status = AlertStatus.ACKNOWLEDGED.value
        group.version += 1
        _log(session, group, actor, now, "acknowledged", "")
        _log_alerts(session, group, actor, now, "acknowledged", ids)
        escalations.acknowledge(session, escalations.GROUP, [group.id], now, actor.id)
        _told(session, group, kinds.ALERT_GROUP_ACKNOWLEDGED, actor, now)
        _incident_note(
            session,
            group,
            actor,
            now,
            "alert_group_acknowledged",
            f"Alert group {group.id} acknowledged",
        )
    return group


def resolve(session: Session, actor: Actor, now: datetime, group_id: int) -> AlertGroupRow:
    """Resolve a group and every open alert in it; a later alert opens a new group."""
    group = get_group(session, group_id, for_update=True)
    if group.status == AlertStatus.RESOLVED:
        return group
    ids = list(
        session.scalars(
            select(AlertRow.id).where(AlertRow.group_id == group.id, AlertRow.status.in_(_OPEN))
        )
    )
    session.execute(
        update(AlertRow)
        .where(AlertRow.group_id == group.id, AlertRow.status.in_(_OPEN))
        .values(status=AlertStatus.RESOLVED.value, resolved_at=now, ends_at=now, open_key=None)
    )
    group.status = AlertStatus.RESOLVED.value
    inhibit_sources.forget_after_commit(session)
    group.resolved_at = now
    group.resolved_by = actor.id
    group.open_key = None
    group.version += 1
    _log(session, group, actor, now, "resolved", "")
    _log_alerts(session, group, actor, now, "resolved", ids)
    escalations.resolve(session, escalations.GROUP, [group.id], now, actor.id)
    _told(session, group, kinds.ALERT_GROUP_RESOLVED, actor, now)
    _incident_note(
        session, group, actor, now, "alert_group_resolved", f"Alert group {group.id} resolved"
    )
    return group


def _told(session: Session, group: AlertGroupRow, kind: str, actor: Actor, now: datetime) -> None:
    lifecycle.emit(session, kind=kind, subject_type=kinds.ALERT_GROUP, subject_id=group.id,
                   actor=actor.id, now=now, data=lifecycle.group_data(group))  # fmt: skip


def group_matchers(session: Session, group: AlertGroupRow) -> dict[str, str]:
    """Return the labels every open alert of the group shares: what a silence of it matches."""
    label_sets = [
        labels or {}
        for labels in session.scalars(
            select(AlertRow.labels)
            .where(AlertRow.group_id == group.id, AlertRow.status.in_(_OPEN))
            .limit(1000)
        )
    ]
    if not label_sets:
        return {}
    common = dict(label_sets[0])
    for labels in label_sets[1:]:
        common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common


def silence_group(
    session: Session,
    actor: Actor,
    now: datetime,
    group_id: int,
    ends_at: datetime,
    comment: str,
) -> tuple[AlertGroupRow, SilenceRow]:
    """Silence what the group's alerts have in common until `ends_at`; suppress them now."""
    group = get_group(session, group_id, for_update=True)
    if group.status == AlertStatus.RESOLVED:
        raise IllegalTransition(group.status, "silenced", [])
    matchers: dict[str, Any] = group_matchers(session, group)
    if not matchers:
        raise InvalidInput(
            "the group's alerts share no labels to silence on; create a silence with matchers",
            field="matchers",
        )
    silence = create_silence(
        session,
        actor,
        now,
        matchers,
        now,
        ends_at,
        comment or f"silenced from alert group {group.id}",
    )
    ids = list(
        session.scalars(
            select(AlertRow.id).where(AlertRow.group_id == group.id, AlertRow.status.in_(_OPEN))
        )
    )
    session.execute(
        update(AlertRow)
        .where(AlertRow.group_id == group.id, AlertRow.status.in_(_OPEN))
        .values(status=AlertStatus.SUPPRESSED.value, suppressed_by=f"silence:{silence.id}")
    )
    group.status = AlertStatus.SUPPRESSED.value
    inhibit_sources.forget_after_commit(session)
    escalations.resolve(session, escalations.GROUP, [group.id], now, actor.id)
    group.version += 1
    _log(
        session,
        group,
        actor,
        now,
        "silenced",
        f"until {ends_at.isoformat()} (silence {silence.id})",
    )
    _log_alerts(session, group, actor, now, "silenced", ids)
    return group, silence


def declare(
    session: Session,
    actor: Actor,
    now: datetime,
    group_id: int,
    severity: str | None,
    title: str | None,
) -> AlertGroupRow:
    """Declare an incident from a group (once); the group links to it."""
    group = get_group(session, group_id, for_update=True)
    if group.incident_id is not None:
        raise InvalidInput(
            f"alert group {group.id} is already linked to incident {group.incident_id}",
            field="incident",
        )
    row: dict[str, Any] = {
        "id": group.id,
        "title": title or group.title,
        "service_id": group.service_id,
        "incident_severity": severity or group.incident_severity,
        "incident_id": None,
    }
    if row["incident_severity"]:
        row["incident_severity"] = _severity_name(session, str(row["incident_severity"]))
    declare_groups(session, [row], now, actor=actor)
    group.incident_id = row["incident_id"]
    group.version += 1
    _log(session, group, actor, now, "declared", f"incident {group.incident_id} declared")
    return group


def _severity_name(session: Session, name: str) -> str:
    from tocsin.core.severity import resolve_severity

    return resolve_severity(name, catalog.severities(session)).name


def merge(
    session: Session, actor: Actor, now: datetime, group_id: int, incident_id: int
) -> AlertGroupRow:
    """Link a group to an open incident, noting it on the incident's timeline."""
    group = get_group(session, group_id, for_update=True)
    incident = incidents.get(session, incident_id)
    if incident.status in (Status.RESOLVED.value, Status.CLOSED.value):
        raise InvalidInput(
            f"incident {incident_id} is {incident.status}; merge into an open incident",
            field="incident",
        )
    previous = group.incident_id
    group.incident_id = incident_id
    escalations.hand_over(session, [group.id], incident_id, now)
    group.version += 1
    _log(session, group, actor, now, "merged", f"merged into incident {incident_id}")
    timeline.record(
        session,
        incident_id,
        actor,
        now,
        "alert_group_linked",
        f"Alert group {group.id} merged: {group.title}",
        {"alert_group": group.id, "previous_incident": previous},
    )
    return group


def create_silence(
    session: Session,
    actor: Actor,
    now: datetime,
    matchers: dict[str, Any],
    starts_at: datetime | None,
    ends_at: datetime,
    comment: str,
) -> SilenceRow:
    """Create a silence (validated matchers, ends after it starts)."""
    if not matchers:
        raise InvalidInput("a silence needs at least one matcher", field="matchers")
    try:
        parse_matchers(matchers)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="matchers") from None
    start = starts_at or now
    if ends_at <= start:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    silence = SilenceRow(
        matchers=matchers,
        starts_at=start,
        ends_at=ends_at,
        created_by=actor.id,
        comment=comment,
        created_at=now,
    )
    session.add(silence)
    session.flush()
    _after_commit_invalidate(session)
    return silence


def expire_silence(session: Session, now: datetime, silence_id: int) -> SilenceRow:
    """End a silence now (kept for the record)."""
    silence = session.get(SilenceRow, silence_id)
    if silence is None:
        raise NotFound(f"silence {silence_id} not found")
    if silence.ends_at > now:
        silence.ends_at = max(now, silence.starts_at)
    _after_commit_invalidate(session)
    return silence


def create_window(
    session: Session,
    actor: Actor,
    now: datetime,
    service: str,
    starts_at: datetime,
    ends_at: datetime,
    comment: str,
) -> MaintenanceWindowRow:
    """Schedule a maintenance window on a service (any length)."""
    if not catalog.check_services(session, [service]):
        raise InvalidInput("a maintenance window needs a service", field="service")
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    window = MaintenanceWindowRow(
        service_id=service,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=actor.id,
        created_at=now,
    )
    session.add(window)
    session.flush()
    _after_commit_invalidate(session)
    return window


def end_window(session: Session, now: datetime, window_id: int) -> MaintenanceWindowRow:
    """End a maintenance window now (or cancel it if it had not started)."""
    window = session.get(MaintenanceWindowRow, window_id)
    if window is None:
        raise NotFound(f"maintenance window {window_id} not found")
    if window.ends_at > now:
        window.ends_at = max(now, window.starts_at)
    _after_commit_invalidate(session)
    return window


def _after_commit_invalidate(session: Session) -> None:
    from sqlalchemy import event

    event.listen(session, "after_commit", lambda _s: alerting_config.invalidate(), once=True)
