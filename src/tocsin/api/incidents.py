"""/api/v1/incidents: declare, list, read, change, acknowledge, roles, notes, checklist."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import AwareDatetime
from sqlalchemy.orm import Session

from tocsin.api.context import AppContext
from tocsin.api.deps import Ctx, Reader, Responder
from tocsin.api.responses import model_response
from tocsin.api.schemas import (
    MAX_ID,
    ChecklistOut,
    ChecklistTick,
    EventOut,
    EventPatch,
    IncidentCreate,
    IncidentOut,
    IncidentPage,
    IncidentPatch,
    MilestoneCorrection,
    NoNul,
    NoteCreate,
    Resolve,
    RoleAssign,
    StatusChange,
    TimelineOut,
)
from tocsin.api.views import (
    checklist_item_out,
    declared_out,
    events_out,
    incident_out,
    incidents_out,
)
from tocsin.core.errors import NotFound
from tocsin.core.incidents import Milestone, Status, parse_reference
from tocsin.services import checklists, incidents, queries, timeline
from tocsin.storage.tables import IncidentRow

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

IncidentId = Annotated[
    str, Path(description="Incident number (42) or reference (INC-42).", max_length=40)
]


async def _committed(
    ctx: AppContext, change: Callable[[Session, datetime], IncidentRow]
) -> Response:
    """Run one change in a committed unit of work and answer with the incident.

    The answer is built inside the transaction and released only after its COMMIT returned.
    """
    out = await ctx.db.run_write(lambda s: incident_out(s, change(s, ctx.clock())))
    return model_response(out)


def _id(value: str) -> int:
    number = parse_reference(value)
    if number is None or number > MAX_ID:
        raise NotFound(f"incident {value!r} not found")
    return number


@router.post("", status_code=201, response_model=IncidentOut, summary="Declare an incident")
async def declare(body: IncidentCreate, ctx: Ctx, actor: Responder) -> Response:
    decl = incidents.Declaration(
        title=body.title,
        severity=body.severity,
        description=body.description,
        services=body.services,
        customer_impact=body.customer_impact,
        tags=body.tags,
        status=body.status,
        detected_at=body.detected_at,
        roles=dict(body.roles),
    )
    # Declarations queued together are written together (executemany, one COMMIT).
    declared = await ctx.db.run_write_batched(
        "declare", (actor, ctx.clock(), decl), incidents.declare_many
    )
    ctx.wake()  # the incident's escalation is due now
    out = declared_out(declared)
    return model_response(out, 201, {"Location": f"/api/v1/incidents/{out.id}"})


@router.get("", response_model=IncidentPage, summary="List incidents, newest first")
def list_incidents(
    ctx: Ctx,
    _actor: Reader,
    status: Annotated[list[Status] | None, Query(description="Repeatable.")] = None,
    severity: Annotated[list[Annotated[str, NoNul]] | None, Query(max_length=20)] = None,
    service: Annotated[str | None, Query(max_length=64), NoNul] = None,
    since: Annotated[AwareDatetime | None, Query(description="Declared at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Declared before.")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in title/description."), NoNul
    ] = None,
    tag: Annotated[list[Annotated[str, NoNul]] | None, Query(max_length=10)] = None,
    open_: Annotated[
        bool | None, Query(alias="open", description="Only open (true) or only ended (false).")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
) -> Response:
    statuses = [s.value for s in status or []]
    if open_ is True:
        statuses = statuses or ["triggered", "investigating", "identified", "monitoring"]
    elif open_ is False:
        statuses = statuses or ["resolved", "closed"]
    flt = queries.IncidentFilter(
        statuses=statuses,
        severities=[s for item in severity or [] for s in item.split(",") if s],
        service=service,
        since=since,
        until=until,
        text=q,
        tags=tag or [],
    )
    with ctx.db.read() as session:
        rows, next_cursor = queries.list_incidents(session, flt, cursor=cursor, limit=limit)
        return model_response(
            IncidentPage(items=incidents_out(session, rows), next_cursor=next_cursor)
        )


@router.get("/{incident_id}", response_model=IncidentOut, summary="Read one incident")
def get_incident(incident_id: IncidentId, ctx: Ctx, _actor: Reader) -> Response:
    with ctx.db.read() as session:
        return model_response(incident_out(session, incidents.get(session, _id(incident_id))))


@router.patch("/{incident_id}", response_model=IncidentOut, summary="Change any field")
async def patch_incident(
    incident_id: IncidentId,
    body: IncidentPatch,
    ctx: Ctx,
    actor: Responder,
    if_match: Annotated[str | None, Header(max_length=40)] = None,
) -> Response:
    expected = body.version
    tag = (if_match or "").strip('"W/')
    if expected is None and tag.isascii() and tag.isdigit():  # isdigit alone accepts "²"
        expected = int(tag)
    changes = incidents.Changes(
        title=body.title,
        description=body.description,
        severity=body.severity,
        status=body.status,
        services=body.services,
        customer_impact=body.customer_impact,
        resolution=body.resolution,
        tags=body.tags,
        roles=body.roles,
        note=body.note,
    )
    return await _committed(
        ctx,
        lambda s, now: incidents.update_incident(
            s, actor, now, _id(incident_id), changes, expected_version=expected
        ),
    )


@router.post("/{incident_id}/acknowledge", response_model=IncidentOut, summary="Acknowledge")
async def acknowledge(incident_id: IncidentId, ctx: Ctx, actor: Responder) -> Response:
    return await _committed(
        ctx, lambda s, now: incidents.acknowledge(s, actor, now, _id(incident_id))
    )


@router.post("/{incident_id}/status", response_model=IncidentOut, summary="Change status")
async def change_status(
    incident_id: IncidentId, body: StatusChange, ctx: Ctx, actor: Responder
) -> Response:
    return await _committed(
        ctx,
        lambda s, now: incidents.change_status(
            s,
            actor,
            now,
            _id(incident_id),
            body.status,
            note=body.note,
            resolution=body.resolution,
        ),
    )


@router.post("/{incident_id}/resolve", response_model=IncidentOut, summary="Resolve")
async def resolve(
    incident_id: IncidentId, ctx: Ctx, actor: Responder, body: Resolve | None = None
) -> Response:
    body = body or Resolve()
    change = StatusChange(status=Status.RESOLVED, note=body.note, resolution=body.resolution)
    return await change_status(incident_id, change, ctx, actor)


@router.put("/{incident_id}/roles/{role}", response_model=IncidentOut, summary="Assign a role")
async def assign_role(
    incident_id: IncidentId,
    role: Annotated[str, Path(max_length=64)],
    body: RoleAssign,
    ctx: Ctx,
    actor: Responder,
) -> Response:
    return await _committed(
        ctx, lambda s, now: incidents.assign_role(s, actor, now, _id(incident_id), role, body.user)
    )


@router.put(
    "/{incident_id}/milestones/{milestone}",
    response_model=IncidentOut,
    summary="Correct a milestone time (commander or admin, with a reason)",
)
async def correct_milestone(
    incident_id: IncidentId,
    milestone: Milestone,
    body: MilestoneCorrection,
    ctx: Ctx,
    actor: Responder,
) -> Response:
    return await _committed(
        ctx,
        lambda s, now: incidents.correct_milestone(
            s, actor, now, _id(incident_id), milestone, body.at, body.reason
        ),
    )


@router.post("/{incident_id}/notes", status_code=201, response_model=EventOut, summary="Add a note")
async def add_note(
    incident_id: IncidentId, body: NoteCreate, ctx: Ctx, actor: Responder
) -> Response:
    number = _id(incident_id)

    def job(session: Session) -> EventOut:
        event = timeline.add_note(session, actor, ctx.clock(), number, body.text)
        return events_out(session, [event])[0]

    return model_response(await ctx.db.run_write(job), 201)


@router.get("/{incident_id}/timeline", response_model=TimelineOut, summary="Read the timeline")
def read_timeline(
    incident_id: IncidentId,
    ctx: Ctx,
    _actor: Reader,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Only events after this id.")
    ] = None,
    pinned: Annotated[bool, Query(description="Only pinned events.")] = False,
) -> Response:
    with ctx.db.read() as session:
        number = _id(incident_id)
        incidents.get(session, number)
        events = timeline.events(session, number, after_id=after, pinned_only=pinned)
        return model_response(TimelineOut(items=events_out(session, events)))


@router.patch(
    "/{incident_id}/timeline/{event_id}",
    response_model=EventOut,
    summary="Pin/unpin an event or edit a note (earlier text is kept)",
)
async def patch_event(
    incident_id: IncidentId,
    event_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: EventPatch,
    ctx: Ctx,
    actor: Responder,
) -> Response:
    number = _id(incident_id)

    def job(session: Session) -> EventOut:
        now = ctx.clock()
        event = timeline.get_event(session, number, event_id)
        if body.text is not None:
            event = timeline.edit_note(session, actor, now, number, event_id, body.text)
        if body.pinned is not None:
            event = timeline.set_pinned(session, actor, now, number, event_id, body.pinned)
        session.flush()
        return events_out(session, [event])[0]

    return model_response(await ctx.db.run_write(job))


@router.post(
    "/{incident_id}/timeline/{event_id}/pin", response_model=EventOut, summary="Pin an event"
)
async def pin_event(
    incident_id: IncidentId,
    event_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Ctx,
    actor: Responder,
) -> Response:
    return await patch_event(incident_id, event_id, EventPatch(pinned=True), ctx, actor)


@router.get("/{incident_id}/checklist", response_model=ChecklistOut, summary="Read the checklist")
def read_checklist(incident_id: IncidentId, ctx: Ctx, _actor: Reader) -> Response:
    with ctx.db.read() as session:
        number = _id(incident_id)
        incidents.get(session, number)
        return model_response(_checklist(session, number))


def _checklist(session: Session, number: int) -> ChecklistOut:
    return ChecklistOut(items=[checklist_item_out(i) for i in checklists.items(session, number)])


@router.post(
    "/{incident_id}/checklist/{item_id}",
    response_model=ChecklistOut,
    summary="Tick (or untick with done=false) a checklist item",
)
async def tick_item(
    incident_id: IncidentId,
    item_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Ctx,
    actor: Responder,
    body: ChecklistTick | None = None,
) -> Response:
    done = body.done if body else True
    number = _id(incident_id)

    def job(session: Session) -> ChecklistOut:
        checklists.tick(session, actor, ctx.clock(), number, item_id, done)
        session.flush()
        return _checklist(session, number)

    return model_response(await ctx.db.run_write(job))
