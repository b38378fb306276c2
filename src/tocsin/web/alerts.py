"""Alerting pages: alert groups (live), one group and what responders do to it, raw payloads,
silences, maintenance windows, heartbeats and change events.

Reads reuse the REST API's serialisers (tocsin.api.alerts) so a page and `GET /api/v1/…` never
disagree; writes call the same services as the API, attributed to the signed-in user, and
redirect back (post/redirect/get) or re-render the page with the reason and a 4xx status.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.api.alerts import group_detail, group_out
from tocsin.core.alerts import AlertStatus
from tocsin.core.durations import format_duration, parse_duration
from tocsin.core.errors import DomainError, InvalidInput, NotFound
from tocsin.core.incidents import Status, incident_reference
from tocsin.services import alert_groups, alert_queries, queries
from tocsin.services import heartbeats as heartbeat_rules
from tocsin.services.alert_queries import AlertFilter
from tocsin.services.escalations import GROUP
from tocsin.storage.tables import HeartbeatRow, IntegrationRow
from tocsin.web import suppressions
from tocsin.web.actions import status_of
from tocsin.web.auth import Reader, WebUser, Writer, get_ctx
from tocsin.web.forms import TITLE_MAX, Choice, load_choices
from tocsin.web.pages import PAGE_SIZE, POLL_EVERY, base_context, error_page
from tocsin.web.paging import paging_panel
from tocsin.web.suppressions import comment_text, record_id
from tocsin.web.templating import render, templates

router = APIRouter(include_in_schema=False)
# Silences and maintenance windows live in their own module; one router installs both.
router.include_router(suppressions.router)

OPEN_STATUSES = [s.value for s in AlertStatus if s is not AlertStatus.RESOLVED]
GROUP_STATUS_FILTERS = [
    Choice("", "Any status"),
    Choice("open", "Open (not resolved)"),
    *[Choice(s.value, s.value.capitalize()) for s in AlertStatus],
]
SILENCE_FOR = [Choice("1h", "1 hour"), Choice("4h", "4 hours"), Choice("24h", "24 hours")]
# Config keys of integrations are secrets (the ingest URL, PagerDuty's routing_key): pages name
# the integration instead, and a payload shown here has its routing_key blanked.
_SECRET_FIELDS = ("routing_key", "service_key")


@dataclass(frozen=True, slots=True)
class Link:
    """A link from an alert; `href` is empty when it is not http(s) and so shown as text."""

    href: str
    text: str


def safe_links(items: Iterable[Mapping[str, Any]], key: str = "href") -> list[Link]:
    """Keep only http(s) targets clickable: a javascript: link in a payload must not run."""
    out = []
    for item in items:
        target = str(item.get(key) or item.get("src") or "")
        text = str(item.get("text") or item.get("alt") or target)
        scheme = urlsplit(target).scheme.lower() if target else ""
        out.append(Link(target if scheme in ("http", "https") else "", text))
    return out


def _integration_names(session: Session) -> dict[str, str]:
    rows = session.execute(select(IntegrationRow.key, IntegrationRow.name, IntegrationRow.type))
    return {key: name or f"{kind} integration" for key, name, kind in rows}


def _integration_label(names: Mapping[str, str], key: str) -> str:
    if key.startswith("heartbeat:"):
        return "heartbeat " + key.removeprefix("heartbeat:")
    return names.get(key, "removed integration")


def _rows_digest(context: dict[str, Any]) -> str:
    """Return a fingerprint of the group list as the viewer would see it."""
    html = templates.env.get_template("alerts/group_rows.html").render(context)
    return hashlib.sha256(html.encode()).hexdigest()[:16]


# --- alert group list ---


def _list_context(
    request: Request, user: WebUser, status: str, service: str, cursor: str
) -> tuple[dict[str, Any], int]:
    statuses = OPEN_STATUSES if status == "open" else [status] if status else []
    flt = AlertFilter(service=service or None, status=statuses)
    error, code = "", 200
    with get_ctx(request).db.read() as session:
        choices = load_choices(session)
        try:
            rows, next_cursor = alert_queries.list_groups(
                session, flt, cursor=cursor or None, limit=PAGE_SIZE
            )
        except DomainError as exc:
            rows, next_cursor, error, code = [], None, exc.message, 422
        counts = alert_queries.status_counts(session, [r.id for r in rows])
        groups = [group_out(r, counts[r.id]) for r in rows]
    query = {"status": status, "service": service}
    context = base_context(
        request, user, nav="alerts", sub="groups", groups=groups, choices=choices, error=error,
        status_filters=GROUP_STATUS_FILTERS, flt=query, next_cursor=next_cursor,
        filtered=bool(status or service), first_page=not cursor,
        query=lambda **extra: urlencode({k: v for k, v in {**query, **extra}.items() if v}),
    )  # fmt: skip
    return context, code


def _list_poll_url(status: str, service: str, cursor: str, seen: str) -> str:
    values = {"status": status, "service": service, "cursor": cursor, "seen": seen}
    return "/alerts/live?" + urlencode({k: v for k, v in values.items() if v})


@router.get("/alerts")
def group_list(
    request: Request,
    user: Reader,
    status: Annotated[str, Query(max_length=20)] = "",
    service: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """List alert groups newest first; the list redraws itself when anything in it changes."""
    context, code = _list_context(request, user, status, service, cursor)
    seen = _rows_digest(context)
    context.update(poll_url=_list_poll_url(status, service, cursor, seen), poll_every=POLL_EVERY)
    return render(request, "alerts/groups.html", context, status_code=code)


@router.get("/alerts/live")
def group_list_live(
    request: Request,
    user: Reader,
    status: Annotated[str, Query(max_length=20)] = "",
    service: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
    seen: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Return the redrawn list as an out-of-band swap, or 204 when it would look the same.

    Comparing the rendered rows (not just versions) also catches ages moving on ("5m ago").
    """
    context, _code = _list_context(request, user, status, service, cursor)
    digest = _rows_digest(context)
    if digest == seen:
        return Response(status_code=204)
    context.update(
        oob=True, poll_url=_list_poll_url(status, service, cursor, digest), poll_every=POLL_EVERY
    )
    return render(request, "alerts/live_groups.html", context)


# --- one alert group ---


def _open_incidents(session: Session) -> list[Choice]:
    open_ = [s.value for s in Status if s not in (Status.RESOLVED, Status.CLOSED)]
    rows, _ = queries.list_incidents(
        session, queries.IncidentFilter(statuses=open_), cursor=None, limit=100
    )
    return [
        Choice(str(r.id), f"{incident_reference(r.id)} · {r.severity} · {r.title}") for r in rows
    ]


def _group_poll_url(group_id: int, version: int, last_log: int) -> str:
    return f"/alerts/{group_id}/live?version={version}&after={last_log}"


def group_page(
    request: Request, user: WebUser, ref: str, *, error: str = "", status: int = 200
) -> HTMLResponse:
    """Render one alert group (with an error banner when an action on it failed)."""
    try:
        group_id = record_id(ref, "alert group")
        with get_ctx(request).db.read() as session:
            group = group_detail(session, group_id)
            choices = load_choices(session)
            incidents = _open_incidents(session) if user.can_write else []
            names = _integration_names(session)
            paging = paging_panel(session, GROUP, group_id, handed_to=group.incident_id)
    except NotFound as exc:
        return error_page(request, user, 404, exc.message)
    last_log = max((h.id for h in group.history), default=0)
    context = base_context(
        request, user, nav="alerts", sub="groups", group=group, choices=choices, error=error,
        open_incidents=incidents, silence_for=SILENCE_FOR, links=safe_links, paging=paging,
        integration=lambda key: _integration_label(names, key),
        poll_url=_group_poll_url(group.id, group.version, last_log), poll_every=POLL_EVERY,
    )  # fmt: skip
    return render(request, "alerts/group.html", context, status_code=status)


@router.get("/alerts/{ref}")
def show_group(request: Request, user: Reader, ref: str) -> HTMLResponse:
    """Show an alert group: summary, actions, its alerts and its history."""
    return group_page(request, user, ref)


@router.get("/alerts/{ref}/live")
def group_live(
    request: Request,
    user: Reader,
    ref: str,
    version: Annotated[int, Query(ge=0, le=2**62)] = 0,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """Redraw the summary, alerts and history out of band when the group changed (else 204)."""
    ctx = get_ctx(request)
    try:
        group_id = record_id(ref, "alert group")
        with ctx.db.read() as session:
            row = alert_queries.group(session, group_id)
            if row is None:
                raise NotFound(f"alert group {group_id} not found")
            # Every change to a group bumps its version or adds to its log (ingest does both).
            newest = alert_queries.group_history(session, group_id, limit=1)
            last_log = newest[0].id if newest else 0
            if row.version == version and last_log == after:
                return Response(status_code=204)
            group = group_detail(session, group_id)
            choices = load_choices(session)
            names = _integration_names(session)
    except NotFound:
        return Response(status_code=286)  # gone: htmx stops polling on 286
    context = base_context(
        request, user, group=group, choices=choices, oob=True, links=safe_links,
        integration=lambda key: _integration_label(names, key),
        poll_url=_group_poll_url(group.id, group.version, last_log), poll_every=POLL_EVERY,
    )  # fmt: skip
    return render(request, "alerts/live_group.html", context)


# A change returns where to go afterwards, or None for back to the group.
GroupChange = Callable[[Session, int, datetime], str | None]


def _act(request: Request, user: WebUser, ref: str, change: GroupChange) -> Response:
    """Run `change` in one committed unit of work, wake the engine, then redirect."""
    ctx = get_ctx(request)
    try:
        group_id = record_id(ref, "alert group")
        with ctx.db.write() as session:
            target = change(session, group_id, ctx.clock())
            session.commit()
    except DomainError as exc:
        return group_page(request, user, ref, error=exc.message, status=status_of(exc))
    ctx.wake()
    return RedirectResponse(target or f"/alerts/{group_id}", status_code=303)


@router.post("/alerts/{ref}/acknowledge")
def acknowledge(request: Request, user: Writer, ref: str) -> Response:
    """Acknowledge the group and its firing alerts."""

    def change(session: Session, group_id: int, now: datetime) -> None:
        alert_groups.acknowledge(session, user.actor, now, group_id)

    return _act(request, user, ref, change)


@router.post("/alerts/{ref}/resolve")
def resolve(request: Request, user: Writer, ref: str) -> Response:
    """Resolve the group and all its open alerts."""

    def change(session: Session, group_id: int, now: datetime) -> None:
        alert_groups.resolve(session, user.actor, now, group_id)

    return _act(request, user, ref, change)


@router.post("/alerts/{ref}/silence")
def silence(
    request: Request,
    user: Writer,
    ref: str,
    duration: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
) -> Response:
    """Silence what the group's alerts share, for one of the offered durations."""

    def change(session: Session, group_id: int, now: datetime) -> None:
        if duration not in {c.value for c in SILENCE_FOR}:
            raise InvalidInput("Choose how long to silence from the list.", field="duration")
        until = now + parse_duration(duration)
        alert_groups.silence_group(session, user.actor, now, group_id, until, comment_text(comment))

    return _act(request, user, ref, change)


@router.post("/alerts/{ref}/declare")
def declare(
    request: Request,
    user: Writer,
    ref: str,
    severity: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
) -> Response:
    """Declare an incident from the group, then go to the incident to work it."""

    def change(session: Session, group_id: int, now: datetime) -> str:
        wanted = title.strip()
        if len(wanted) > TITLE_MAX:
            raise InvalidInput(f"Keep the title under {TITLE_MAX} characters.", field="title")
        group = alert_groups.declare(
            session, user.actor, now, group_id, severity or None, wanted or None
        )
        return f"/incidents/{group.incident_id}"

    return _act(request, user, ref, change)


@router.post("/alerts/{ref}/merge")
def merge(
    request: Request, user: Writer, ref: str, incident: Annotated[str, Form()] = ""
) -> Response:
    """Link the group to an open incident (noted on the incident's timeline)."""

    def change(session: Session, group_id: int, now: datetime) -> None:
        if not incident.strip():
            raise InvalidInput("Choose an open incident to merge into.", field="incident")
        number = record_id(incident.strip().upper().removeprefix("INC-"), "incident")
        alert_groups.merge(session, user.actor, now, group_id, number)

    return _act(request, user, ref, change)


# --- raw payloads ---


def pretty_payload(body: str | None) -> str:
    """Return a payload body indented when it is JSON, with integration secrets blanked."""
    if body is None:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict):
        for name in _SECRET_FIELDS:
            if name in data:
                data[name] = "(hidden)"
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)


@router.get("/alerts/payloads/{ref}")
def show_payload(request: Request, user: Reader, ref: str) -> HTMLResponse:
    """Show a stored payload as received (indented, secrets blanked), or why it was refused."""
    try:
        payload_id = record_id(ref, "payload")
        with get_ctx(request).db.read() as session:
            row = alert_queries.payload(session, payload_id)
            names = _integration_names(session)
        if row is None:
            raise NotFound(f"payload {payload_id} not found (or past its retention)")
    except NotFound as exc:
        return error_page(request, user, 404, exc.message)
    context = base_context(
        request, user, nav="alerts", sub="groups", payload=row, body=pretty_payload(row.body),
        problem=pretty_payload(row.error) if row.error else "",
        integration=_integration_label(names, row.integration_key),
    )  # fmt: skip
    return render(request, "alerts/payload.html", context)


# --- heartbeats and change events ---


@dataclass(frozen=True, slots=True)
class HeartbeatView:
    key: str
    name: str
    service: str
    interval: str
    last_ping_at: datetime | None
    due_at: datetime
    status: str


def heartbeat_views(session: Session, now: datetime) -> list[HeartbeatView]:
    """Return the configured heartbeats with their state: ok, overdue or waiting (never pinged).

    The same rule as GET /api/v1/heartbeats: due one interval after the last ping, or after
    the heartbeat was configured when it never pinged.
    """
    rows = session.scalars(
        select(HeartbeatRow).where(~HeartbeatRow.archived).order_by(HeartbeatRow.key)
    )
    out = []
    for row in rows:
        interval = timedelta(seconds=row.interval_s)
        due, state = heartbeat_rules.state(row.last_ping_at, row.created_at, interval, now)
        out.append(
            HeartbeatView(
                key=row.key,
                name=row.name or row.key,
                service=row.service_id,
                interval=format_duration(interval),
                last_ping_at=row.last_ping_at,
                due_at=due,
                status=state,
            )
        )
    return out


@router.get("/heartbeats")
def heartbeats(request: Request, user: Reader) -> HTMLResponse:
    """List heartbeats: status, last ping and when the next one is due."""
    ctx = get_ctx(request)
    with ctx.db.read() as session:
        beats = heartbeat_views(session, ctx.clock())
        choices = load_choices(session)
    context = base_context(
        request, user, nav="alerts", sub="heartbeats", beats=beats, choices=choices
    )
    return render(request, "alerts/heartbeats.html", context)


@router.get("/changes")
def changes(
    request: Request,
    user: Reader,
    service: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """List recent change events (deploys, config changes), newest first."""
    error, code = "", 200
    with get_ctx(request).db.read() as session:
        choices = load_choices(session)
        try:
            rows, next_cursor = alert_queries.change_events(
                session, service or None, cursor=cursor or None, limit=PAGE_SIZE
            )
        except DomainError as exc:
            rows, next_cursor, error, code = [], None, exc.message, 422
    context = base_context(
        request, user, nav="alerts", sub="changes", events=rows, choices=choices, error=error,
        service=service, next_cursor=next_cursor, first_page=not cursor, links=safe_links,
    )  # fmt: skip
    return render(request, "alerts/changes.html", context, status_code=code)
