"""/api/v1 on-call: schedules (who is on call, shifts, overrides, calendar feeds and imports).

Included here: oncall_people.py (contact methods, notification rules, personal calendar) and
oncall_escalations.py (escalation policies, escalations, notifications).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.orm import Session

from tocsin.api import oncall_schemas as sch
from tocsin.api.deps import Admin, Ctx, Reader, Responder, optional_actor
from tocsin.api.links import public_base_url
from tocsin.api.oncall_escalations import router as escalations_router
from tocsin.api.oncall_people import calendar_response, check_reader
from tocsin.api.oncall_people import router as people_router
from tocsin.api.responses import model_response
from tocsin.api.schemas import MAX_ID, NoNul
from tocsin.core.actors import Actor
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.core.oncall.ical import parse_calendar
from tocsin.services import calendar_import, schedules
from tocsin.services import oncall_queries as q
from tocsin.storage.oncall_tables import (
    ScheduleLayerRow,
    ScheduleOverrideRow,
    ScheduleRow,
)

router = APIRouter(prefix="/api/v1", tags=["on-call"])
router.include_router(people_router)
router.include_router(escalations_router)

ScheduleId = Annotated[str, Path(max_length=64), NoNul]
TimeParam = Annotated[
    str | None, Query(max_length=64, description="RFC 3339 time, e.g. 2026-01-05T09:30:00+01:00")
]
MAX_WINDOW = timedelta(days=366)
DEFAULT_WINDOW = timedelta(days=14)
MAX_SHIFT_COUNT = 200
# A "+" in an unencoded query string arrives as a space: "09:30 01:00" meant "09:30+01:00".
_SPACE_OFFSET = re.compile(r" (\d\d(?::?\d\d)?)$")


def parse_instant(value: str | None, field: str, default: datetime) -> datetime:
    """Return an RFC 3339 time in UTC (default when absent); InvalidInput says what is wrong."""
    if value is None or not value.strip():
        return default
    text = _SPACE_OFFSET.sub(r"+\1", value.strip())
    example = "2026-01-05T09:30:00+01:00 or 2026-01-05T08:30:00Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{field}: {value!r} is not an RFC 3339 time such as {example}", field=field
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(
            f"{field}: {value!r} has no UTC offset; add Z or an offset such as +01:00", field=field
        )
    return in_range(moment, field)


def in_range(moment: datetime, field: str) -> datetime:
    """Return an aware time in UTC; years far outside any schedule's are InvalidInput."""
    if not 1971 <= moment.year <= 9000:
        raise InvalidInput(f"{field}: {moment.isoformat()} is out of range", field=field)
    return moment.astimezone(UTC)


def people_out(session: Session, ids: Iterable[str]) -> list[sch.PersonOut]:
    ordered = list(ids)
    found = q.people(session, ordered)
    return [_person(q.person_of(found, user_id)) for user_id in ordered]


def _person(person: q.Person) -> sch.PersonOut:
    return sch.PersonOut(id=person.id, name=person.name, email=person.email)


def _slots_out(session: Session, slots: list[q.Slot]) -> list[sch.SlotOut]:
    found = q.people(session, {s.user for s in slots if s.user})
    return [
        sch.SlotOut(
            user=s.user,
            name=q.person_of(found, s.user).name if s.user else None,
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            gap=s.gap,
        )
        for s in slots
    ]


def override_out(row: ScheduleOverrideRow) -> sch.OverrideOut:
    return sch.OverrideOut(
        id=row.id,
        schedule=row.schedule_id,
        kind=row.kind,
        user=row.user_id,
        replaces=row.replaces_user_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _layer_out(session: Session, row: ScheduleLayerRow, zone: str) -> sch.LayerOut:
    out = sch.LayerOut(
        position=row.position,
        name=row.name,
        rotation=row.rotation,
        users=list(row.users or []),
        restrict=list(row.restrict or []),
        calendar=row.calendar is not None,
    )
    if row.calendar:
        try:
            layer = parse_calendar(
                row.calendar, schedules.user_resolver(session), default_zone=zone
            )
        except ValueError:
            return out
        out.calendar_users = sorted({user for _, user in layer.users})
        out.calendar_unmatched = list(layer.unresolved)
    return out


# --- schedules ---


@router.get("/schedules", response_model=sch.ScheduleList, summary="Schedules and who is on call")
def list_schedules(ctx: Ctx, _actor: Reader) -> Response:
    now = ctx.clock()
    with ctx.db.read() as session:
        items = [
            sch.ScheduleSummary(
                id=row.id,
                name=row.name or row.id,
                time_zone=row.time_zone,
                on_call=people_out(session, users),
            )
            for row, users in q.on_call_now(session, now)
        ]
    return model_response(sch.ScheduleList(items=items))


@router.get(
    "/schedules/{schedule_id}",
    response_model=sch.ScheduleDetailOut,
    summary="A schedule: layers, overrides, who is on call, next shifts, gaps",
)
def get_schedule(schedule_id: ScheduleId, ctx: Ctx, _actor: Reader) -> Response:
    now = ctx.clock()
    with ctx.db.read() as session:
        detail = q.schedule_detail(session, schedule_id, now)
        row = detail.row
        upcoming = [q.Slot(s.user, s.starts_at, s.ends_at) for s in detail.next_shifts]
        out = sch.ScheduleDetailOut(
            id=row.id,
            name=row.name or row.id,
            description=row.description,
            time_zone=row.time_zone,
            layers=[_layer_out(session, layer, row.time_zone) for layer in detail.layers],
            overrides=[override_out(o) for o in detail.overrides],
            on_call=people_out(session, detail.on_call),
            next_shifts=_slots_out(session, upcoming),
            gaps=[sch.GapOut(starts_at=b, ends_at=e) for b, e in detail.gaps],
        )
    return model_response(out)


@router.get(
    "/schedules/{schedule_id}/on-call",
    response_model=sch.OnCallOut,
    summary="Who is on call at a time (default: now)",
)
def on_call(schedule_id: ScheduleId, ctx: Ctx, _actor: Reader, at: TimeParam = None) -> Response:
    moment = parse_instant(at, "at", ctx.clock())
    with ctx.db.read() as session:
        users = schedules.on_call(session, schedule_id, moment)
        out = sch.OnCallOut(schedule=schedule_id, at=moment, users=people_out(session, users))
    return model_response(out)


@router.get(
    "/schedules/{schedule_id}/shifts",
    response_model=sch.ShiftsOut,
    summary="Final shifts and gaps in a window (start/end), or the next N shifts (count)",
)
def shifts(
    schedule_id: ScheduleId,
    ctx: Ctx,
    _actor: Reader,
    start: TimeParam = None,
    end: TimeParam = None,
    count: Annotated[int | None, Query(ge=1, le=MAX_SHIFT_COUNT)] = None,
) -> Response:
    now = ctx.clock()
    if count is not None and (start or end):
        raise InvalidInput("give either count or start/end, not both", field="count")
    begins = parse_instant(start, "start", now)
    ends = parse_instant(end, "end", begins + DEFAULT_WINDOW)
    if ends <= begins:
        raise InvalidInput("end must be after start", field="end")
    if ends - begins > MAX_WINDOW:
        raise InvalidInput("the window may span at most 366 days", field="end")
    with ctx.db.read() as session:
        built = schedules.load(session, schedule_id, since=begins)
        if count is not None:
            found = q.next_slots(built, now, count)
            begins = now
            ends = max((s.ends_at for s in found), default=now)
        else:
            found = q.slots(built, begins, ends)
        out = sch.ShiftsOut(
            schedule=schedule_id, start=begins, end=ends, items=_slots_out(session, found)
        )
    return model_response(out)


# --- calendar feeds ---


@router.get(
    "/schedules/{schedule_id}/calendar.ics",
    response_class=Response,
    summary="Shifts as an iCalendar feed (30 days back, 180 ahead); ?token= for calendar apps",
)
def schedule_calendar(
    schedule_id: ScheduleId,
    ctx: Ctx,
    actor: Annotated[Actor | None, Depends(optional_actor)],
    token: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    now = ctx.clock()
    with ctx.db.read() as session:
        if token is not None:
            row = session.get(ScheduleRow, schedule_id)
            if row is None or row.archived or not q.check_schedule_calendar_token(row, token):
                raise NotFound(f"schedule {schedule_id!r} not found")
        else:
            check_reader(actor)
        body = q.schedule_feed(session, schedule_id, now)
    return calendar_response(body, schedule_id)


@router.get(
    "/schedules/{schedule_id}/calendar-url",
    response_model=sch.CalendarUrlOut,
    summary="The subscribable URL of a schedule's calendar feed (it carries a secret)",
)
def schedule_calendar_url(schedule_id: ScheduleId, ctx: Ctx, _actor: Reader) -> Response:
    with ctx.db.read() as session:
        row = q.schedule_row(session, schedule_id)
        url = (
            f"{public_base_url(ctx.settings)}/api/v1/schedules/{row.id}/calendar.ics"
            f"?token={row.calendar_token}"
        )
    return model_response(sch.CalendarUrlOut(url=url))


@router.post(
    "/schedules/{schedule_id}/calendar",
    response_model=sch.CalendarImportOut,
    summary="Import an iCalendar file (text/calendar, or JSON {calendar}) as the calendar layer",
    openapi_extra={
        "requestBody": {
            "content": {
                "text/calendar": {"schema": {"type": "string"}},
                "application/json": {"schema": sch.CalendarImportIn.model_json_schema()},
            }
        }
    },
)
async def import_calendar(
    schedule_id: ScheduleId, request: Request, ctx: Ctx, _actor: Admin
) -> Response:
    text = _calendar_text(await request.body(), request.headers.get("content-type", ""))

    def job(session: Session) -> sch.CalendarImportOut:
        done = calendar_import.import_calendar(session, schedule_id, text)
        return sch.CalendarImportOut(
            schedule=done.schedule_id,
            events=done.events,
            matched_users=[sch.MatchedUser(calendar_name=n, user=u) for n, u in done.users],
            unmatched=list(done.unmatched),
            layer=done.position,
            replaced=done.replaced,
        )

    out = await ctx.db.run_write(job)
    ctx.wake()
    return model_response(out)


def _calendar_text(body: bytes, content_type: str) -> str:
    if not body.strip():
        raise InvalidInput("send the calendar as the request body (text/calendar)", field="body")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the calendar is not UTF-8 text", field="calendar") from None
    if content_type.split(";", maxsplit=1)[0].strip().lower() == "application/json":
        try:
            data: Any = json.loads(text)
        except ValueError:
            raise InvalidInput("the body is not valid JSON", field="body") from None
        if not isinstance(data, dict) or not isinstance(data.get("calendar"), str):
            raise InvalidInput('send {"calendar": "BEGIN:VCALENDAR…"}', field="calendar")
        text = data["calendar"]
    if "\x00" in text:
        raise InvalidInput("the calendar must not contain NUL characters", field="calendar")
    return text


@router.delete(
    "/schedules/{schedule_id}/calendar",
    status_code=204,
    response_class=Response,
    summary="Drop the imported calendar layer (rotation layers stay)",
)
async def remove_calendar(schedule_id: ScheduleId, ctx: Ctx, _actor: Admin) -> Response:
    removed = await ctx.db.run_write(lambda s: calendar_import.remove_calendar(s, schedule_id))
    if not removed:
        raise NotFound(f"schedule {schedule_id!r} has no imported calendar")
    ctx.wake()
    return Response(status_code=204)


# --- overrides ---


@router.get(
    "/schedules/{schedule_id}/overrides",
    response_model=sch.OverrideList,
    summary="Overrides that have not ended (past=true: all)",
)
def list_overrides(
    schedule_id: ScheduleId,
    ctx: Ctx,
    _actor: Reader,
    past: Annotated[bool, Query(description="Include ended overrides.")] = False,
) -> Response:
    with ctx.db.read() as session:
        rows = q.overrides(session, schedule_id, ctx.clock(), include_past=past)
        items = [override_out(r) for r in rows]
    return model_response(sch.OverrideList(items=items))


@router.post(
    "/schedules/{schedule_id}/overrides",
    status_code=201,
    response_model=sch.OverrideOut,
    summary="Add, remove or replace someone on call for a while",
)
async def create_override(
    schedule_id: ScheduleId, body: sch.OverrideCreate, ctx: Ctx, actor: Responder
) -> Response:
    kind = body.kind or ("replace" if body.replaces else "add")
    starts_at, ends_at = in_range(body.starts_at, "starts_at"), in_range(body.ends_at, "ends_at")

    def job(session: Session) -> sch.OverrideOut:
        row = schedules.add_override(
            session,
            schedule_id,
            kind=kind,
            user_id=body.user,
            replaces=body.replaces,
            starts_at=starts_at,
            ends_at=ends_at,
            note=body.note,
            actor=actor.id,
            now=ctx.clock(),
        )
        return override_out(row)

    out = await ctx.db.run_write(job)
    ctx.wake()
    location = f"/api/v1/schedules/{schedule_id}/overrides/{out.id}"
    return model_response(out, 201, {"Location": location})


@router.delete(
    "/schedules/{schedule_id}/overrides/{override_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an override",
)
async def delete_override(
    schedule_id: ScheduleId,
    override_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Ctx,
    _actor: Responder,
) -> Response:
    await ctx.db.run_write(lambda s: schedules.remove_override(s, schedule_id, override_id))
    ctx.wake()
    return Response(status_code=204)
