"""/api/v1 escalation policies, running escalations, and what was sent about an incident or
alert group (the notification log, the messages and the escalation's state)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.orm import Session

from tocsin.api import oncall_schemas as sch
from tocsin.api.deps import Ctx, Reader
from tocsin.api.responses import model_response
from tocsin.api.schemas import MAX_ID, NoNul
from tocsin.core.actors import Actor, Scope
from tocsin.core.durations import format_duration
from tocsin.core.errors import NotFound
from tocsin.core.incidents import parse_reference
from tocsin.services import alert_groups, escalations, incidents
from tocsin.services import oncall_queries as q
from tocsin.storage.oncall_tables import EscalationRow, NotificationLogRow, OutboxRow

router = APIRouter()

PolicyId = Annotated[str, Path(max_length=64), NoNul]


# --- escalation policies ---


def _targets(targets: Iterable[str], names: dict[str, str]) -> list[sch.TargetOut]:
    out = []
    for target in targets:
        kind, _, key = target.partition(":")
        out.append(sch.TargetOut(target=target, type=kind, id=key, name=names.get(target, key)))
    return out


def policy_out(session: Session, detail: q.PolicyDetail) -> sch.PolicyOut:
    row = detail.row
    every = [t for step in detail.steps for t in step.targets] + list(row.sla_notify or [])
    names = q.target_names(session, every)
    return sch.PolicyOut(
        id=row.id,
        name=row.name or row.id,
        description=row.description,
        repeat=row.repeat,
        ack_timeout=(
            None
            if row.ack_timeout_s is None
            else format_duration(timedelta(seconds=row.ack_timeout_s))
        ),
        on_sla_breach=_targets(row.sla_notify or [], names),
        steps=[
            sch.StepOut(
                position=step.position,
                after=format_duration(timedelta(seconds=step.after_s)),
                after_seconds=step.after_s,
                targets=_targets(step.targets, names),
                round_robin=step.round_robin,
            )
            for step in detail.steps
        ],
        services=detail.services,
    )


@router.get("/escalation-policies", response_model=sch.PolicyList, summary="Escalation policies")
def list_policies(ctx: Ctx, _actor: Reader) -> Response:
    with ctx.db.read() as session:
        items = [policy_out(session, d) for d in q.policies(session)]
    return model_response(sch.PolicyList(items=items))


@router.get(
    "/escalation-policies/{policy_id}",
    response_model=sch.PolicyOut,
    summary="An escalation policy: steps, repeat, ack timeout, SLA breach, services using it",
)
def get_policy(policy_id: PolicyId, ctx: Ctx, _actor: Reader) -> Response:
    with ctx.db.read() as session:
        return model_response(policy_out(session, q.policy_detail(session, policy_id)))


# --- escalations and notifications ---


def escalation_out(row: EscalationRow) -> sch.EscalationOut:
    return sch.EscalationOut(
        id=row.id,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        title=row.title,
        policy=row.policy_id,
        service=row.service_id,
        urgency=row.urgency,
        severity=row.severity,
        status=row.status,
        run=row.run,
        cycle=row.cycle,
        step=row.step,
        next_at=row.next_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        sla_due_at=row.sla_due_at,
        sla_breached_at=row.sla_breached_at,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
    )


@router.get(
    "/escalations",
    response_model=sch.EscalationPage,
    summary="Escalations, newest first (status: active, acknowledged, resolved)",
)
def list_escalations(
    ctx: Ctx,
    _actor: Reader,
    status: Annotated[list[str] | None, Query(max_length=3, description="Repeatable.")] = None,
    subject_type: Annotated[
        str | None, Query(max_length=16, description="alert_group or incident")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    statuses = [s.strip() for item in status or [] for s in item.split(",") if s.strip()]
    with ctx.db.read() as session:
        rows, next_cursor = q.list_escalations(
            session, status=statuses, subject_type=subject_type, cursor=cursor, limit=limit
        )
        items = [escalation_out(r) for r in rows]
    return model_response(sch.EscalationPage(items=items, next_cursor=next_cursor))


def _log_out(row: NotificationLogRow, masks: dict[int, tuple[str, str]]) -> sch.LogEntryOut:
    text, detail = row.text, dict(row.detail or {})
    masked = masks.get(row.outbox_id or 0)
    if masked is not None:
        full, shown = masked
        text = text.replace(full, shown)
        # Errors in the detail may quote the address too, not only "destination".
        detail = {k: v.replace(full, shown) if isinstance(v, str) else v for k, v in detail.items()}
    return sch.LogEntryOut(
        id=row.id,
        at=row.at,
        kind=row.kind,
        user=row.user_id,
        text=text,
        outbox_id=row.outbox_id,
        detail=detail,
    )


def _message_out(row: OutboxRow, masked: tuple[str, str] | None) -> sch.MessageOut:
    destination, error = row.destination, row.last_error
    if masked is not None:
        destination = masked[1]
        # Receivers' errors often quote the address ("550 alice@… unknown").
        error = error.replace(masked[0], masked[1]) if error else error
    return sch.MessageOut(
        id=row.id,
        kind=row.kind,
        channel=row.channel,
        destination=destination,
        user=row.user_id,
        contact_method=row.contact_method_id,
        title=row.title,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_error=error,
    )


def notifications_out(
    session: Session, subject_type: str, subject_id: int, actor: Actor
) -> sch.NotificationsOut:
    found = q.subject_notifications(session, subject_type, subject_id)
    admin = actor.can(Scope.ADMIN)
    masks: dict[int, tuple[str, str]] = {}
    if not admin:
        for message in found.messages:
            masks[message.id] = (
                message.destination,
                q.mask_destination(message.channel, message.destination),
            )
    return sch.NotificationsOut(
        subject_type=subject_type,
        subject_id=subject_id,
        escalation=escalation_out(found.escalation) if found.escalation else None,
        log=[_log_out(row, masks) for row in found.log],
        messages=[_message_out(m, masks.get(m.id)) for m in found.messages],
    )


@router.get(
    "/incidents/{incident_id}/notifications",
    response_model=sch.NotificationsOut,
    summary="Who was paged about an incident, how, and the escalation's state",
)
def incident_notifications(
    incident_id: Annotated[str, Path(max_length=40)], ctx: Ctx, actor: Reader
) -> Response:
    number = parse_reference(incident_id)
    if number is None or number > MAX_ID:
        raise NotFound(f"incident {incident_id!r} not found")
    with ctx.db.read() as session:
        incidents.get(session, number)
        out = notifications_out(session, escalations.INCIDENT, number, actor)
    return model_response(out)


@router.get(
    "/alert-groups/{group_id}/notifications",
    response_model=sch.NotificationsOut,
    summary="Who was paged about an alert group, how, and the escalation's state",
)
def group_notifications(
    group_id: Annotated[int, Path(ge=1, le=MAX_ID)], ctx: Ctx, actor: Reader
) -> Response:
    with ctx.db.read() as session:
        alert_groups.get_group(session, group_id)
        out = notifications_out(session, escalations.GROUP, group_id, actor)
    return model_response(out)
