"""/a/{token}: the acknowledge and resolve links in page messages.

The signed token is the credential (one action, one subject, one person, for a while), so
these pages need no login and no CSRF token. Acknowledging happens on GET: it is what the
link is for and repeating it is harmless. Resolving is not undoable, and mail scanners open
every link in a message, so GET only asks and the POST of its button resolves.
An answer is HTML for people, or JSON when the client asks for application/json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from itsdangerous import BadSignature
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tocsin.api.context import AppContext
from tocsin.api.links import links_of
from tocsin.core.actors import Actor
from tocsin.core.alerts import AlertStatus
from tocsin.core.errors import DomainError, NotFound
from tocsin.core.incidents import Status
from tocsin.services import access, alert_groups, escalations, incidents
from tocsin.services.page_messages import (
    ActionClaim,
    BadLink,
    read_action,
    subject_label,
    subject_url,
)
from tocsin.storage.tables import UserRow
from tocsin.web.pages import base_context
from tocsin.web.templating import render

router = APIRouter(include_in_schema=False)

Token = Annotated[str, Path(max_length=1000)]
SOURCE = "link"
# The token is in the URL: keep it out of Referer headers, search engines and caches.
_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}
_ENDED_INCIDENT = (Status.RESOLVED.value, Status.CLOSED.value)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a link did (or would do): shown as a page or returned as JSON."""

    action: str
    subject_type: str
    subject_id: int
    result: str  # done | already | confirm | refused
    status: str
    message: str
    title: str = ""


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _expired(ctx: AppContext, token: str) -> bool:
    """Whether a refused token is genuine but too old (410) rather than forged (404)."""
    try:
        links_of(ctx).signer().loads(token)
    except (BadSignature, ValueError, TypeError):
        return False
    return True


def _actor(session: Session, claim: ActionClaim) -> Actor:
    user = session.get(UserRow, claim.user_id)
    if user is None or user.archived:
        raise NotFound("the person this link was sent to no longer exists")
    return access.actor_for_user(user, SOURCE)


def _incident(session: Session, claim: ActionClaim, actor: Actor | None, now: datetime) -> Outcome:
    """Acknowledge or resolve an incident (actor None: only describe what a POST would do)."""
    incident = incidents.get(session, claim.subject_id)
    label = subject_label(claim.subject_type, claim.subject_id)

    def outcome(result: str, message: str) -> Outcome:
        return Outcome(
            claim.action, claim.subject_type, claim.subject_id, result, incident.status, message,
            incident.title,
        )  # fmt: skip

    if incident.status in _ENDED_INCIDENT:
        return outcome("already", f"{label} is already {incident.status}; nothing to do.")
    if claim.action == "acknowledge":
        if incident.acknowledged_at is not None and incident.status != Status.TRIGGERED:
            return outcome("already", f"{label} was already acknowledged; no more pages.")
        if actor is None:
            return outcome("confirm", f"Acknowledge {label}?")
        incidents.acknowledge(session, actor, now, incident.id)
        return outcome("done", f"{label} is acknowledged; nobody else will be paged for it.")
    if actor is None:
        return outcome("confirm", f"Resolve {label}? This ends the incident.")
    incidents.change_status(session, actor, now, incident.id, Status.RESOLVED)
    return outcome("done", f"{label} is resolved.")


def _group(session: Session, claim: ActionClaim, actor: Actor | None, now: datetime) -> Outcome:
    """Acknowledge or resolve an alert group (actor None: only describe it)."""
    group = alert_groups.get_group(session, claim.subject_id)
    label = subject_label(claim.subject_type, claim.subject_id)

    def outcome(result: str, message: str) -> Outcome:
        return Outcome(
            claim.action, claim.subject_type, claim.subject_id, result, group.status, message,
            group.title,
        )  # fmt: skip

    if group.status == AlertStatus.RESOLVED:
        return outcome("already", f"{label} is already resolved; nothing to do.")
    if claim.action == "acknowledge":
        if group.acknowledged_at is not None:
            by = f" by {group.acknowledged_by}" if group.acknowledged_by else ""
            return outcome("already", f"{label} was already acknowledged{by}; no more pages.")
        if actor is None:
            return outcome("confirm", f"Acknowledge {label}?")
        alert_groups.acknowledge(session, actor, now, group.id)
        return outcome("done", f"{label} is acknowledged; nobody else will be paged for it.")
    if actor is None:
        return outcome("confirm", f"Resolve {label} and all its alerts?")
    alert_groups.resolve(session, actor, now, group.id)
    return outcome("done", f"{label} is resolved.")


def _act(session: Session, claim: ActionClaim, now: datetime, *, perform: bool) -> Outcome:
    """Perform the claim's action, or (perform False) say what it would do."""
    actor = _actor(session, claim) if perform else None
    if claim.subject_type == escalations.INCIDENT:
        return _incident(session, claim, actor, now)
    if claim.subject_type == escalations.GROUP:
        return _group(session, claim, actor, now)
    raise NotFound("this link points at something Tocsin does not know")


def _page(
    request: Request, token: str, outcome: Outcome | None, status: int, message: str
) -> Response:
    if _wants_json(request):
        body = asdict(outcome) if outcome else {"detail": message}
        return JSONResponse(body, status_code=status, headers=_HEADERS)
    headings = {
        "done": "Done",
        "already": "Nothing to do",
        "confirm": "Please confirm",
        "refused": "Not possible",
    }
    heading = (
        headings[outcome.result] if outcome else {410: "Link expired"}.get(status, "Link not valid")
    )
    confirm = ""
    if outcome and outcome.result == "confirm":
        confirm = "Resolve" if outcome.action == "resolve" else "Acknowledge"
    context = base_context(
        request,
        None,
        heading=heading,
        message=message,
        confirm=confirm,
        action_path=f"/a/{token}",
        subject_label=subject_label(outcome.subject_type, outcome.subject_id) if outcome else "",
        subject_title=outcome.title if outcome else "",
        subject_path=subject_url("", outcome.subject_type, outcome.subject_id) if outcome else "",
    )
    return render(request, "oncall/action.html", context, status_code=status, headers=_HEADERS)


async def _handle(request: Request, token: str, *, perform: bool) -> Response:
    ctx = _ctx(request)
    try:
        claim = read_action(links_of(ctx), token)
    except BadLink as exc:
        status = 410 if _expired(ctx, token) else 404
        return _page(request, token, None, status, str(exc))
    # Acknowledging needs no confirmation: GET does it, as the message promises.
    perform = perform or claim.action == "acknowledge"
    now = ctx.clock()

    try:
        if perform:
            outcome = await ctx.db.run_write(lambda s: _act(s, claim, now, perform=True))
        else:
            outcome = await run_in_threadpool(_read, ctx, claim, now)
    except NotFound as exc:
        return _page(request, token, None, 404, exc.message)
    except DomainError as exc:
        refused = Outcome(
            claim.action, claim.subject_type, claim.subject_id, "refused", "", exc.message
        )
        return _page(request, token, refused, 409, exc.message)
    if outcome.result == "done":
        ctx.wake()
    return _page(request, token, outcome, 200, outcome.message)


def _read(ctx: AppContext, claim: ActionClaim, now: datetime) -> Outcome:
    with ctx.db.read() as session:
        return _act(session, claim, now, perform=False)


@router.get("/a/{token}")
async def open_link(request: Request, token: Token) -> Response:
    """Acknowledge at once, or ask before resolving."""
    return await _handle(request, token, perform=False)


@router.post("/a/{token}")
async def confirm_link(request: Request, token: Token) -> Response:
    """Perform the link's action."""
    return await _handle(request, token, perform=True)
