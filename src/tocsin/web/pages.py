"""Pages that read: the incident list, the declare form, an incident and its live updates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from tocsin.api.schemas import EventOut
from tocsin.api.views import events_out, incident_out, incidents_out
from tocsin.core.errors import DomainError, NotFound
from tocsin.core.incidents import Status, parse_reference
from tocsin.services import incidents, queries, timeline
from tocsin.services.escalations import INCIDENT
from tocsin.web.auth import Reader, WebUser, clockface, get_ctx, session_user
from tocsin.web.comm_panel import comm_panel
from tocsin.web.forms import STATUS_FILTERS, DeclareForm, ListFilter, load_choices
from tocsin.web.paging import paging_panel
from tocsin.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
POLL_EVERY = "2s"


def incident_number(ref: str) -> int:
    """Return the incident number of '42' or 'INC-42', or raise NotFound."""
    number = parse_reference(ref)
    if number is None or number > 2**62:
        raise NotFound(f"incident {ref!r} not found")
    return number


def base_context(request: Request, user: WebUser | None, **values: Any) -> dict[str, Any]:
    """Return what the base template needs, plus `values`."""
    return {
        "user": user,
        "fmt": clockface(request, user),
        "nav": "",
        "error": "",
        "oob": False,
        **values,
    }


def error_page(request: Request, user: WebUser | None, status: int, message: str) -> HTMLResponse:
    """Render a plain error page."""
    return render(
        request,
        "error.html",
        base_context(request, user, status=status, message=message),
        status_code=status,
    )


@router.get("/")
def home(request: Request) -> Response:
    """Go to the incident list, or to the login page first."""
    target = "/incidents" if session_user(request) else "/login"
    return RedirectResponse(target, status_code=303)


@router.get("/incidents")
def incident_list(
    request: Request,
    user: Reader,
    status: Annotated[str, Query(max_length=20)] = "",
    severity: Annotated[str, Query(max_length=32)] = "",
    service: Annotated[str, Query(max_length=64)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """List incidents newest first, filtered, one page at a time."""
    ctx = get_ctx(request)
    flt = ListFilter(status=status, severity=severity, service=service, q=q.strip())
    spec = queries.IncidentFilter(
        statuses=flt.statuses(),
        severities=[severity] if severity else [],
        service=service or None,
        text=flt.q or None,
    )
    error, code = "", 200
    with ctx.db.read() as session:
        choices = load_choices(session)
        try:
            rows, next_cursor = queries.list_incidents(
                session, spec, cursor=cursor or None, limit=PAGE_SIZE
            )
        except DomainError as exc:
            rows, next_cursor, error, code = [], None, exc.message, 422
        items = incidents_out(session, rows)
    context = base_context(
        request, user, nav="incidents", items=items, flt=flt, choices=choices, error=error,
        status_filters=STATUS_FILTERS, next_cursor=next_cursor, first_page=not cursor,
    )  # fmt: skip
    return render(request, "incidents.html", context, status_code=code)


def declare_page(
    request: Request, user: WebUser, form: DeclareForm, *, status: int = 200
) -> HTMLResponse:
    """Render the declare form, with any errors of a rejected attempt."""
    with get_ctx(request).db.read() as session:
        choices = load_choices(session)
    context = base_context(request, user, nav="declare", form=form, choices=choices)
    if form.errors:
        context["error"] = "The incident was not declared: " + " ".join(form.errors.values())
    return render(request, "declare.html", context, status_code=status)


@router.get("/incidents/new")
def declare_form(request: Request, user: Reader) -> HTMLResponse:
    """Show the declare form."""
    if not user.can_write:
        return error_page(
            request, user, 403, "Your account can read incidents but not declare them."
        )
    return declare_page(request, user, DeclareForm())


def incident_page(
    request: Request, user: WebUser, ref: str, *, error: str = "", status: int = 200
) -> HTMLResponse:
    """Render one incident (with an error banner when an action on it failed)."""
    ctx = get_ctx(request)
    try:
        number = incident_number(ref)
        with ctx.db.read() as session:
            inc = incident_out(session, incidents.get(session, number))
            events = events_out(session, timeline.events(session, number))
            choices = load_choices(session)
            paging = paging_panel(session, INCIDENT, number)
            comm = comm_panel(session, number, ctx.clock())
    except NotFound as exc:
        return error_page(request, user, 404, exc.message)
    context = base_context(
        request, user, nav="incidents", inc=inc, events=events, choices=choices, error=error,
        paging=paging, comm=comm,
        poll_url=_poll_url(inc.id, events, inc.version), poll_every=POLL_EVERY,
        resolvable=Status.RESOLVED in inc.allowed_next,
    )  # fmt: skip
    return render(request, "incident.html", context, status_code=status)


@router.get("/incidents/{ref}")
def show_incident(request: Request, user: Reader, ref: str) -> HTMLResponse:
    """Show one incident with its timeline, roles and checklist."""
    return incident_page(request, user, ref)


@router.get("/incidents/{ref}/live")
def live(
    request: Request,
    user: Reader,
    ref: str,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    version: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """Return what changed since the page was drawn, as htmx out-of-band swaps (204: nothing)."""
    ctx = get_ctx(request)
    try:
        number = incident_number(ref)
        with ctx.db.read() as session:
            row = incidents.get(session, number)
            # Every writer locks the incident row before adding an event, so one incident's
            # event ids become visible in order and "after the last id seen" misses nothing.
            new = timeline.events(session, number, after_id=after)
            if not new and row.version == version:
                return Response(status_code=204)
            events = events_out(session, new)
            repinned = _repinned(session, number, events)
            inc = incident_out(session, row) if row.version != version else None
            choices = load_choices(session)
            current_version = row.version
    except NotFound:
        # The incident is gone (or never was): stop polling rather than asking forever.
        return Response(status_code=286)
    last = events[-1].id if events else after
    context = base_context(
        request, user, inc=inc, events=events, repinned=repinned, choices=choices,
        poll_url=f"/incidents/{number}/live?after={last}&version={current_version}",
        poll_every=POLL_EVERY,
    )  # fmt: skip
    return render(request, "partials/live.html", context)


def _poll_url(number: int, events: list[EventOut], version: int) -> str:
    last = events[-1].id if events else 0
    return f"/incidents/{number}/live?after={last}&version={version}"


def _repinned(session: Session, number: int, events: list[EventOut]) -> list[EventOut]:
    """Return the older events whose pin changed, to redraw them in place."""
    new_ids = {e.id for e in events}
    targets = {
        int(e.data["event_id"])
        for e in events
        if e.kind in ("pinned", "unpinned") and isinstance(e.data.get("event_id"), int)
    }
    rows = []
    for event_id in sorted(targets - new_ids):
        try:
            rows.append(timeline.get_event(session, number, event_id))
        except NotFound:
            continue
    return events_out(session, rows)
