"""/api/v1/users/{user}/…: a person's contact methods (added, verified, removed), notification
rules and personal on-call calendar. A user manages their own ("me" works too); admins anyone's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from tocsin.api import oncall_schemas as sch
from tocsin.api.context import AppContext
from tocsin.api.deps import Ctx, Reader, optional_actor
from tocsin.api.errors import error_body
from tocsin.api.links import links_of, public_base_url
from tocsin.api.responses import model_response
from tocsin.api.schemas import NoNul
from tocsin.core.actors import Actor, Scope
from tocsin.core.durations import format_duration
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.services import contact_methods as cm
from tocsin.services import oncall_queries as q
from tocsin.storage.oncall_tables import ContactMethodRow
from tocsin.storage.tables import UserRow

router = APIRouter(prefix="/users/{user_id}")

UserId = Annotated[str, Path(max_length=64, description="A user id, or `me`."), NoNul]
MethodId = Annotated[str, Path(max_length=64), NoNul]
T = TypeVar("T")
CALENDAR_TYPE = "text/calendar; charset=utf-8"


def calendar_response(body: bytes, name: str) -> Response:
    """Answer with an iCalendar feed."""
    return Response(
        content=body,
        media_type=CALENDAR_TYPE,
        headers={
            "Content-Disposition": f'inline; filename="{name}.ics"',
            "Cache-Control": "no-store",
        },
    )


def check_reader(actor: Actor | None) -> None:
    """Demand a logged-in reader (the calendar feeds also take a ?token= instead)."""
    if actor is None:
        raise HTTPException(
            401,
            "authentication required (or the feed's ?token=)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not actor.can(Scope.READ):
        raise HTTPException(403, "this needs the 'read' scope")


def method_out(row: ContactMethodRow) -> sch.ContactMethodOut:
    field = cm.TARGET_FIELDS.get(row.type, "url")

    def target(name: str) -> str | None:
        return row.target if name == field else None

    return sch.ContactMethodOut(
        id=row.id,
        user=row.user_id,
        type=row.type,
        address=target("address"),
        url=target("url"),
        number=target("number"),
        member=target("member"),
        topic=target("topic"),
        name=row.name,
        source=row.source,
        verified=row.verified_at is not None,
        verified_at=row.verified_at,
        created_at=row.created_at,
    )


async def _refusable(ctx: AppContext, job: Callable[[Session], T]) -> T | JSONResponse:
    """Run a write; the refusals that are not plain 4xx domain errors become 409 and 429."""
    try:
        return await ctx.db.run_write(job)
    except cm.TooManyAttempts as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse(error_body(exc.message), status_code=429, headers=headers)
    except cm.Conflict as exc:
        return JSONResponse(error_body(exc.message), status_code=409)


async def _answer(
    ctx: AppContext, job: Callable[[Session], BaseModel], status: int = 200
) -> Response:
    result = await _refusable(ctx, job)
    if isinstance(result, Response):
        return result
    return model_response(result, status)


# --- contact methods ---


@router.get(
    "/contact-methods", response_model=sch.ContactMethodList, summary="A user's contact methods"
)
def list_methods(user_id: UserId, ctx: Ctx, actor: Reader) -> Response:
    with ctx.db.read() as session:
        user = cm.owner(session, actor, user_id)
        items = [method_out(r) for r in cm.methods(session, user.id)]
    return model_response(sch.ContactMethodList(items=items))


@router.post(
    "/contact-methods",
    status_code=201,
    response_model=sch.ContactMethodOut,
    summary="Add a contact method (unverified; a code is sent to it)",
)
async def add_method(
    user_id: UserId, body: sch.ContactMethodCreate, ctx: Ctx, actor: Reader
) -> Response:
    wanted = cm.TARGET_FIELDS[body.type]
    target = getattr(body, wanted)
    if target is None:
        raise InvalidInput(f"a {body.type} contact method needs `{wanted}`", field=wanted)
    for other in sorted(set(cm.TARGET_FIELDS.values()) - {wanted}):
        if getattr(body, other) is not None:
            raise InvalidInput(
                f"a {body.type} contact method takes `{wanted}`, not `{other}`", field=other
            )
    secret = links_of(ctx).secret

    def job(session: Session) -> sch.ContactMethodOut:
        user = cm.owner(session, actor, user_id)
        row = cm.add(
            session, user, kind=body.type, target=target, name=body.name, secret=secret,
            now=ctx.clock(),
        )  # fmt: skip
        return method_out(row)

    response = await _answer(ctx, job, 201)
    ctx.wake()
    return response


@router.post(
    "/contact-methods/{method_id}/verify",
    response_model=sch.ContactMethodOut,
    summary="Verify a contact method with the code sent to it",
)
async def verify_method(
    user_id: UserId, method_id: MethodId, body: sch.VerifyIn, ctx: Ctx, actor: Reader
) -> Response:
    secret = links_of(ctx).secret

    def job(session: Session) -> tuple[sch.ContactMethodOut, str | None]:
        user = cm.owner(session, actor, user_id)
        row = cm.method(session, user.id, method_id)
        refused = cm.verify(session, row, body.code, secret=secret, now=ctx.clock())
        return method_out(row), refused

    result = await _refusable(ctx, job)
    if isinstance(result, Response):
        return result
    out, refused = result
    if refused is not None:
        # Raised after the commit: the attempt a wrong code used up must stay counted.
        raise InvalidInput(refused, field="code")
    return model_response(out)


@router.post(
    "/contact-methods/{method_id}/send-code",
    response_model=sch.CodeSentOut,
    summary="Send a new verification code (at most one a minute)",
)
async def send_code(user_id: UserId, method_id: MethodId, ctx: Ctx, actor: Reader) -> Response:
    secret = links_of(ctx).secret

    def job(session: Session) -> sch.CodeSentOut:
        user = cm.owner(session, actor, user_id)
        row = cm.method(session, user.id, method_id)
        cm.send_code(session, row, secret=secret, now=ctx.clock())
        return sch.CodeSentOut(contact_method=row.id, expires_at=row.verify_expires_at)

    response = await _answer(ctx, job)
    ctx.wake()
    return response


@router.delete(
    "/contact-methods/{method_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a contact method the user added (and the rules using it)",
)
async def remove_method(user_id: UserId, method_id: MethodId, ctx: Ctx, actor: Reader) -> Response:
    def job(session: Session) -> None:
        user = cm.owner(session, actor, user_id)
        cm.remove(session, cm.method(session, user.id, method_id))

    result = await _refusable(ctx, job)
    if isinstance(result, Response):
        return result
    return Response(status_code=204)


# --- notification rules ---


def rules_out(session: Session, user_id: str) -> sch.RulesOut:
    found = cm.rules(session, user_id)
    ids = [r.contact_method_id for items in found.values() for r in items]
    verified = cm.verified_ids(session, ids)
    by_urgency = {
        urgency: [
            sch.RuleOut(
                after=format_duration(timedelta(seconds=r.after_s)),
                after_seconds=r.after_s,
                via=r.contact_method_id,
                verified=r.contact_method_id in verified,
            )
            for r in found.get(urgency, [])
        ]
        for urgency in cm.URGENCIES
    }
    return sch.RulesOut(user=user_id, high=by_urgency["high"], low=by_urgency["low"])


@router.get(
    "/notification-rules",
    response_model=sch.RulesOut,
    summary="How a user is notified when paged, per urgency",
)
def get_rules(user_id: UserId, ctx: Ctx, actor: Reader) -> Response:
    with ctx.db.read() as session:
        user = cm.owner(session, actor, user_id)
        return model_response(rules_out(session, user.id))


@router.put(
    "/notification-rules",
    response_model=sch.RulesOut,
    summary="Replace a user's notification rules ({high: [{after, via}], low: [...]})",
)
async def put_rules(user_id: UserId, body: sch.RulesIn, ctx: Ctx, actor: Reader) -> Response:
    wanted = cm.parse_rules(
        {"high": [(r.after, r.via) for r in body.high], "low": [(r.after, r.via) for r in body.low]}
    )

    def job(session: Session) -> sch.RulesOut:
        user = cm.owner(session, actor, user_id)
        cm.set_rules(session, user.id, wanted)
        return rules_out(session, user.id)

    return model_response(await ctx.db.run_write(job))


# --- personal calendar ---


@router.get(
    "/calendar.ics",
    response_class=Response,
    summary="A person's shifts on every schedule as iCalendar; ?token= for calendar apps",
)
def user_calendar(
    user_id: UserId,
    ctx: Ctx,
    actor: Annotated[Actor | None, Depends(optional_actor)],
    token: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    if token is not None:
        if not q.check_user_calendar_token(links_of(ctx).secret, user_id, token):
            raise NotFound(f"user {user_id!r} not found")
    else:
        check_reader(actor)
    with ctx.db.read() as session:
        body = q.user_feed(session, user_id, ctx.clock())
    return calendar_response(body, user_id)


@router.get(
    "/calendar-url",
    response_model=sch.CalendarUrlOut,
    summary="The subscribable URL of a person's calendar feed (it carries a secret)",
)
def user_calendar_url(user_id: UserId, ctx: Ctx, actor: Reader) -> Response:
    with ctx.db.read() as session:
        user: UserRow = cm.owner(session, actor, user_id)
    token = q.user_calendar_token(links_of(ctx).secret, user.id)
    url = f"{public_base_url(ctx.settings)}/api/v1/users/{user.id}/calendar.ics?token={token}"
    return model_response(sch.CalendarUrlOut(url=url))
