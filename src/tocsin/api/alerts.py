"""/api/v1/alerts, /api/v1/alert-groups, silences, maintenance windows, change events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from tocsin.api import alert_schemas as sch
from tocsin.api.context import AppContext
from tocsin.api.deps import Ctx, Reader, Responder
from tocsin.api.responses import model_response
from tocsin.api.schemas import MAX_ID, NoNul
from tocsin.core.actors import Actor, Scope
from tocsin.core.alerts import AlertStatus
from tocsin.core.durations import format_duration, parse_duration
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.core.incidents import parse_reference
from tocsin.services import alert_groups, alert_queries, catalog, heartbeats
from tocsin.services.alert_queries import AlertFilter
from tocsin.storage.tables import HeartbeatRow, MaintenanceWindowRow, SilenceRow

router = APIRouter(prefix="/api/v1", tags=["alerts"])

GroupId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=200)]
Statuses = Annotated[list[AlertStatus] | None, Query(description="Repeatable.")]
Labels = Annotated[
    list[Annotated[str, NoNul]] | None,
    Query(max_length=20, description="name=value, repeatable; all must hold."),
]
Filter = Annotated[str | None, Query(max_length=255), NoNul]


def mask_key(key: str) -> str:
    """Show enough of an integration or heartbeat key to recognise it, not to use it.

    The key is the only credential of the ingest URLs, so read-scope users and tokens must not
    be able to send alerts just because they can see them; admins read keys from the config.
    """
    return key if len(key) <= 8 else f"{key[:4]}…{key[-2:]}"


def _shown(key: str, actor: Actor) -> str:
    return key if actor.can(Scope.ADMIN) else mask_key(key)


def _body_shown(body: str | None, key: str, actor: Actor) -> str | None:
    if body is None or actor.can(Scope.ADMIN):
        return body
    return body.replace(key, mask_key(key))


def alert_out(row: Row[Any]) -> sch.AlertOut:
    return sch.AlertOut(
        id=row.id,
        status=row.status,
        dedup_key=row.dedup_key,
        title=row.title,
        source=row.source,
        severity=row.severity,
        service=row.service_id,
        integration=mask_key(row.integration_key),
        group_id=row.group_id,
        urgency=row.urgency,
        labels=row.labels or {},
        details=row.details or {},
        links=row.links or [],
        images=row.images or [],
        component=row.component,
        group=row.group_name,
        class_=row.class_name,
        suppressed_by=row.suppressed_by,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        event_count=row.event_count,
    )


def group_out(row: Any, counts: dict[str, int]) -> sch.AlertGroupOut:
    return sch.AlertGroupOut(
        id=row.id,
        status=row.status,
        title=row.title,
        service=row.service_id,
        urgency=row.urgency,
        incident_severity=row.incident_severity,
        incident_id=row.incident_id,
        alert_count=row.alert_count,
        counts=counts,
        group_key=row.group_key,
        created_at=row.created_at,
        last_alert_at=row.last_alert_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        version=row.version,
    )


def _history(rows: Sequence[Row[Any]]) -> list[sch.HistoryOut]:
    return [
        sch.HistoryOut(
            id=r.id,
            at=r.at,
            kind=r.kind,
            actor=r.actor,
            text=r.text,
            alert_id=r.alert_id,
            payload_id=r.payload_id,
        )
        for r in rows
    ]


def _filter(
    service: str | None,
    status: list[AlertStatus] | None,
    label: list[str] | None,
    dedup_key: str | None,
    integration: str | None = None,
) -> AlertFilter:
    return AlertFilter(
        service=service,
        status=[s.value for s in status or []],
        labels=alert_queries.parse_label_filters(label or []),
        dedup_key=dedup_key,
        integration=integration,
    )


@router.get("/alerts", response_model=sch.AlertPage, summary="List alerts, newest first")
def list_alerts(
    ctx: Ctx,
    _actor: Reader,
    service: Filter = None,
    status: Statuses = None,
    label: Labels = None,
    dedup_key: Filter = None,
    integration: Filter = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 50,
) -> Response:
    flt = _filter(service, status, label, dedup_key, integration)
    with ctx.db.read() as session:
        rows, next_cursor = alert_queries.list_alerts(session, flt, cursor=cursor, limit=limit)
        page = sch.AlertPage(items=[alert_out(r) for r in rows], next_cursor=next_cursor)
    return model_response(page)


@router.get(
    "/alerts/{alert_id}", response_model=sch.AlertDetail, summary="An alert and its history"
)
def get_alert(alert_id: GroupId, ctx: Ctx, _actor: Reader) -> Response:
    with ctx.db.read() as session:
        row = alert_queries.alert(session, alert_id)
        if row is None:
            raise NotFound(f"alert {alert_id} not found")
        history = _history(alert_queries.alert_history(session, alert_id))
    base = alert_out(row).model_dump(by_alias=True)
    return model_response(sch.AlertDetail.model_validate({**base, "history": history}))


@router.get("/alert-payloads/{payload_id}", response_model=sch.PayloadOut, summary="A raw payload")
def get_payload(payload_id: GroupId, ctx: Ctx, actor: Reader) -> Response:
    import json

    with ctx.db.read() as session:
        row = alert_queries.payload(session, payload_id)
    if row is None:
        raise NotFound(f"payload {payload_id} not found (or past its retention)")
    return model_response(
        sch.PayloadOut(
            id=row.id,
            integration=_shown(row.integration_key, actor),
            format=row.format,
            received_at=row.received_at,
            body=_body_shown(row.body, row.integration_key, actor),
            error=json.loads(row.error) if row.error else None,
        )
    )


@router.get(
    "/alert-payloads",
    response_model=list[sch.PayloadOut],
    summary="Recently refused payloads and why",
)
def rejected(ctx: Ctx, actor: Reader, integration: Filter = None, limit: Limit = 50) -> Response:
    import json

    with ctx.db.read() as session:
        rows = alert_queries.rejected_payloads(session, integration, limit)
    items = [
        sch.PayloadOut(
            id=r.id,
            integration=_shown(r.integration_key, actor),
            format=r.format,
            received_at=r.received_at,
            body=_body_shown(r.body, r.integration_key, actor),
            error=json.loads(r.error),
        )
        for r in rows
    ]
    return Response(
        content=b"[" + b",".join(i.model_dump_json().encode() for i in items) + b"]",
        media_type="application/json",
    )


@router.get("/alert-groups", response_model=sch.AlertGroupPage, summary="List alert groups")
def list_groups(
    ctx: Ctx,
    _actor: Reader,
    service: Filter = None,
    status: Statuses = None,
    label: Labels = None,
    dedup_key: Filter = None,
    incident: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Linked to it.")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 50,
) -> Response:
    flt = replace(_filter(service, status, label, dedup_key), incident_id=incident)
    with ctx.db.read() as session:
        rows, next_cursor = alert_queries.list_groups(session, flt, cursor=cursor, limit=limit)
        counts = alert_queries.status_counts(session, [r.id for r in rows])
        items = [group_out(r, counts[r.id]) for r in rows]
    return model_response(sch.AlertGroupPage(items=items, next_cursor=next_cursor))


def group_detail(session: Session, group_id: int) -> sch.AlertGroupDetail:
    """Return a group with its first 200 alerts and its history."""
    row = alert_queries.group(session, group_id)
    if row is None:
        raise NotFound(f"alert group {group_id} not found")
    counts = alert_queries.status_counts(session, [group_id])[group_id]
    alerts, _ = alert_queries.list_alerts(
        session, AlertFilter(group_id=group_id), cursor=None, limit=200
    )
    base = group_out(row, counts).model_dump()
    return sch.AlertGroupDetail.model_validate(
        {
            **base,
            "alerts": [alert_out(a) for a in alerts],
            "history": _history(alert_queries.group_history(session, group_id)),
        }
    )


@router.get(
    "/alert-groups/{group_id}",
    response_model=sch.AlertGroupDetail,
    summary="An alert group, its alerts and history",
)
def get_group(group_id: GroupId, ctx: Ctx, _actor: Reader) -> Response:
    with ctx.db.read() as session:
        return model_response(group_detail(session, group_id))


async def _group_action(
    ctx: AppContext, group_id: int, change: Callable[[Session, datetime], object]
) -> Response:
    def job(session: Session) -> sch.AlertGroupDetail:
        change(session, ctx.clock())
        session.flush()
        return group_detail(session, group_id)

    out = await ctx.db.run_write(job)
    ctx.wake()
    return model_response(out)


@router.post(
    "/alert-groups/{group_id}/acknowledge",
    response_model=sch.AlertGroupDetail,
    summary="Acknowledge an alert group",
)
async def acknowledge(group_id: GroupId, ctx: Ctx, actor: Responder) -> Response:
    return await _group_action(
        ctx, group_id, lambda s, now: alert_groups.acknowledge(s, actor, now, group_id)
    )


@router.post(
    "/alert-groups/{group_id}/resolve",
    response_model=sch.AlertGroupDetail,
    summary="Resolve an alert group and all its alerts",
)
async def resolve(group_id: GroupId, ctx: Ctx, actor: Responder) -> Response:
    return await _group_action(
        ctx, group_id, lambda s, now: alert_groups.resolve(s, actor, now, group_id)
    )


def _until(now: datetime, ends_at: datetime | None, duration: str | None) -> datetime:
    if ends_at is not None and duration is not None:
        raise InvalidInput("give ends_at or duration, not both", field="duration")
    if ends_at is not None:
        return ends_at
    if duration is None:
        raise InvalidInput("give ends_at or duration (e.g. 2h)", field="duration")
    try:
        return now + parse_duration(duration)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="duration") from None


@router.post(
    "/alert-groups/{group_id}/silence",
    response_model=sch.AlertGroupDetail,
    summary="Silence what a group's alerts share, for a while",
)
async def silence(
    group_id: GroupId, body: sch.SilenceRequest, ctx: Ctx, actor: Responder
) -> Response:
    return await _group_action(
        ctx,
        group_id,
        lambda s, now: alert_groups.silence_group(
            s, actor, now, group_id, _until(now, body.ends_at, body.duration), body.comment
        ),
    )


@router.post(
    "/alert-groups/{group_id}/declare",
    response_model=sch.AlertGroupDetail,
    status_code=201,
    summary="Declare an incident from an alert group",
)
async def declare(
    group_id: GroupId, body: sch.DeclareFromGroup, ctx: Ctx, actor: Responder
) -> Response:
    response = await _group_action(
        ctx,
        group_id,
        lambda s, now: alert_groups.declare(s, actor, now, group_id, body.severity, body.title),
    )
    response.status_code = 201
    return response


@router.post(
    "/alert-groups/{group_id}/merge",
    response_model=sch.AlertGroupDetail,
    summary="Link an alert group to an open incident",
)
async def merge(group_id: GroupId, body: sch.MergeRequest, ctx: Ctx, actor: Responder) -> Response:
    number = parse_reference(body.incident)
    if number is None or number > MAX_ID:
        raise NotFound(f"incident {body.incident!r} not found")
    return await _group_action(
        ctx, group_id, lambda s, now: alert_groups.merge(s, actor, now, group_id, number)
    )


# --- silences ---


def silence_out(row: SilenceRow, now: datetime) -> sch.SilenceOut:
    return sch.SilenceOut(
        id=row.id,
        matchers=row.matchers,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
        created_at=row.created_at,
        from_config=row.config_position is not None,
        active=row.starts_at <= now < row.ends_at,
    )


@router.get("/silences", response_model=sch.SilencePage, summary="Current and future silences")
def list_silences(
    ctx: Ctx,
    _actor: Reader,
    expired: Annotated[bool, Query(description="Include ended silences.")] = False,
) -> Response:
    now = ctx.clock()
    with ctx.db.read() as session:
        stmt = select(SilenceRow).order_by(SilenceRow.id.desc()).limit(500)
        if not expired:
            stmt = stmt.where(SilenceRow.ends_at > now)
        items = [silence_out(r, now) for r in session.scalars(stmt)]
    return model_response(sch.SilencePage(items=items))


@router.post(
    "/silences", response_model=sch.SilenceOut, status_code=201, summary="Create a silence"
)
async def create_silence(body: sch.SilenceCreate, ctx: Ctx, actor: Responder) -> Response:
    def job(session: Session) -> sch.SilenceOut:
        now = ctx.clock()
        ends = _until(body.starts_at or now, body.ends_at, body.duration)
        row = alert_groups.create_silence(
            session, actor, now, body.matchers, body.starts_at, ends, body.comment
        )
        return silence_out(row, now)

    return model_response(await ctx.db.run_write(job), 201)


@router.delete("/silences/{silence_id}", response_model=sch.SilenceOut, summary="Expire a silence")
async def expire_silence(silence_id: GroupId, ctx: Ctx, _actor: Responder) -> Response:
    def job(session: Session) -> sch.SilenceOut:
        now = ctx.clock()
        return silence_out(alert_groups.expire_silence(session, now, silence_id), now)

    return model_response(await ctx.db.run_write(job))


# --- maintenance windows ---


def window_out(row: MaintenanceWindowRow, now: datetime) -> sch.WindowOut:
    return sch.WindowOut(
        id=row.id,
        service=row.service_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        comment=row.comment,
        created_by=row.created_by,
        created_at=row.created_at,
        from_config=row.config_position is not None,
        active=row.starts_at <= now < row.ends_at,
    )


@router.get(
    "/maintenance-windows",
    response_model=sch.WindowPage,
    summary="Current and scheduled maintenance windows",
)
def list_windows(
    ctx: Ctx,
    _actor: Reader,
    service: Filter = None,
    expired: Annotated[bool, Query(description="Include ended windows.")] = False,
) -> Response:
    now = ctx.clock()
    with ctx.db.read() as session:
        stmt = select(MaintenanceWindowRow).order_by(MaintenanceWindowRow.starts_at).limit(500)
        if not expired:
            stmt = stmt.where(MaintenanceWindowRow.ends_at > now)
        if service:
            stmt = stmt.where(MaintenanceWindowRow.service_id == service)
        items = [window_out(r, now) for r in session.scalars(stmt)]
    return model_response(sch.WindowPage(items=items))


@router.post(
    "/maintenance-windows",
    response_model=sch.WindowOut,
    status_code=201,
    summary="Schedule a maintenance window on a service",
)
async def create_window(body: sch.WindowCreate, ctx: Ctx, actor: Responder) -> Response:
    def job(session: Session) -> sch.WindowOut:
        now = ctx.clock()
        start = body.starts_at or now
        row = alert_groups.create_window(
            session,
            actor,
            now,
            body.service,
            start,
            _until(start, body.ends_at, body.duration),
            body.comment,
        )
        return window_out(row, now)

    return model_response(await ctx.db.run_write(job), 201)


@router.delete(
    "/maintenance-windows/{window_id}",
    response_model=sch.WindowOut,
    summary="End (or cancel) a maintenance window",
)
async def end_window(window_id: GroupId, ctx: Ctx, _actor: Responder) -> Response:
    def job(session: Session) -> sch.WindowOut:
        now = ctx.clock()
        return window_out(alert_groups.end_window(session, now, window_id), now)

    return model_response(await ctx.db.run_write(job))


# --- change events and heartbeats ---


@router.get(
    "/change-events",
    response_model=sch.ChangeEventPage,
    summary="Change events (deploys, config changes), newest first",
)
def list_changes(
    ctx: Ctx,
    _actor: Reader,
    service: Filter = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 50,
) -> Response:
    with ctx.db.read() as session:
        rows, next_cursor = alert_queries.change_events(
            session, service, cursor=cursor, limit=limit
        )
    items = [
        sch.ChangeEventOut(
            id=r.id,
            service=r.service_id,
            integration=mask_key(r.integration_key),
            summary=r.summary,
            source=r.source,
            timestamp=r.timestamp,
            links=r.links or [],
            custom_details=r.custom_details or {},
            received_at=r.received_at,
        )
        for r in rows
    ]
    return model_response(sch.ChangeEventPage(items=items, next_cursor=next_cursor))


@router.get("/heartbeats", response_model=sch.HeartbeatPage, summary="Heartbeats and their state")
def list_heartbeats(ctx: Ctx, actor: Reader) -> Response:
    now = ctx.clock()
    with ctx.db.read() as session:
        rows = session.scalars(
            select(HeartbeatRow).where(~HeartbeatRow.archived).order_by(HeartbeatRow.key)
        ).all()
        items = []
        for row in rows:
            interval = timedelta(seconds=row.interval_s)
            due, state = heartbeats.state(row.last_ping_at, row.created_at, interval, now)
            items.append(
                sch.HeartbeatOut(
                    key=_shown(row.key, actor),
                    name=row.name,
                    service=row.service_id,
                    interval=format_duration(timedelta(seconds=row.interval_s)),
                    last_ping_at=row.last_ping_at,
                    due_at=due,
                    status=state,
                )
            )
    return model_response(sch.HeartbeatPage(items=items))


@router.get(
    "/services/{service}/timeline",
    summary="What happened on a service, newest first: change events, alert groups, incidents",
)
def service_timeline(
    service: Annotated[str, Path(max_length=64), NoNul], ctx: Ctx, _actor: Reader,
    limit: Limit = 100,
) -> Response:  # fmt: skip
    with ctx.db.read() as session:
        catalog.check_services(session, [service])
        items = alert_queries.service_timeline(session, service, limit)
    for item in items:
        item["at"] = item["at"].isoformat()
    return JSONResponse({"service": service, "items": items})
