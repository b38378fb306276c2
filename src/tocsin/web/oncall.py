"""On-call pages: schedules (who is on call, the next two weeks, layers, overrides and the
calendar feed) and escalation policies. People's own settings are in profile.py, installed
through this router.

Reads go through the same services as GET /api/v1/schedules…; overrides are added and deleted
with services.schedules like the API does, attributed to the signed-in user, and the page comes
back (post/redirect/get) or is re-rendered with the reason and a 4xx status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tocsin.core.errors import DomainError, InvalidInput, NotFound
from tocsin.core.oncall.rotation import local_to_utc, zone_info
from tocsin.services import oncall_queries as q
from tocsin.services import schedules
from tocsin.web import oncall_views as views
from tocsin.web import policy_views, profile
from tocsin.web.actions import status_of
from tocsin.web.auth import Reader, WebUser, Writer, get_ctx
from tocsin.web.forms import Choice, load_choices
from tocsin.web.pages import base_context, error_page
from tocsin.web.suppressions import record_id
from tocsin.web.templating import Clockface, render

T = TypeVar("T")
router = APIRouter(include_in_schema=False)
router.include_router(profile.router)

OVERRIDE_KINDS = [
    Choice("replace", "Replace: someone takes over"),
    Choice("add", "Add: someone joins"),
    Choice("remove", "Remove: someone is off"),
]
NOTE_MAX = 2000
ID_MAX = 64
# A datetime-local value is 16 characters (19 with seconds); anything much longer is not one.
_TIME_MAX = 32
# Default end of a new override when the schedule never changes hands.
_DEFAULT_LENGTH = timedelta(hours=1)
_PREFILL_LIMIT = timedelta(days=31)


def ident(value: str, what: str) -> str:
    """Return a configuration id from a path, or raise NotFound (never a database error)."""
    if not value or len(value) > ID_MAX or not value.isprintable():
        raise NotFound(f"{what} {value[:ID_MAX]!r} not found")
    return value


def calendar_url(request: Request, schedule_id: str, token: str) -> str:
    """Return the feed URL to subscribe to: at TOCSIN_PUBLIC_URL, else where this page is."""
    base = get_ctx(request).settings.public_url or str(request.base_url)
    path = f"/api/v1/schedules/{quote(schedule_id, safe='')}/calendar.ics"
    return f"{base.rstrip('/')}{path}?token={quote(token, safe='')}"


# --- schedules ---


@router.get("/schedules")
def schedule_list(request: Request, user: Reader) -> HTMLResponse:
    """List schedules with who is on call now and the next handoff."""
    ctx = get_ctx(request)
    now = ctx.clock()
    with ctx.db.read() as session:
        items = views.schedule_summaries(session, now)
    context = base_context(
        request, user, nav="oncall", sub="schedules", items=items,
        zone_fmt=lambda name: Clockface.for_zone(name, now),
    )  # fmt: skip
    return render(request, "oncall/schedules.html", context)


@dataclass(slots=True)
class OverrideForm:
    """The add-override form as typed, kept so a refused one comes back filled in."""

    kind: str = "replace"
    user: str = ""
    replaces: str = ""
    starts: str = ""
    ends: str = ""
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def _prefilled(user: WebUser, page: views.SchedulePage, now: datetime) -> OverrideForm:
    """Offer the common case: I take over from whoever is on call until the next handoff."""
    zone = page.row.time_zone
    start = now.replace(second=0, microsecond=0)
    change = page.next_change
    end = (
        change if change is not None and change - now <= _PREFILL_LIMIT else start + _DEFAULT_LENGTH
    )
    current = [p.id for p in page.on_call if p.id != user.id]
    return OverrideForm(
        kind="replace",
        user=user.id,
        replaces=current[0] if current else "",
        starts=views.local_input(start, zone),
        ends=views.local_input(end, zone),
    )


def schedule_page(
    request: Request,
    user: WebUser,
    ref: str,
    *,
    form: OverrideForm | None = None,
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    """Render one schedule (with a refused override form, or an error banner)."""
    ctx = get_ctx(request)
    now = ctx.clock()
    try:
        schedule_id = ident(ref, "schedule")
        with ctx.db.read() as session:
            page = views.schedule_page(session, schedule_id, now)
            choices = load_choices(session)
    except NotFound as exc:
        return error_page(request, user, 404, exc.message)
    if form is None:
        form = _prefilled(user, page, now)
    if form.errors and not error:
        error = "The override was not added: " + " ".join(form.errors.values())
    context = base_context(
        request, user, nav="oncall", sub="schedules", page=page, form=form, error=error,
        users=choices.users, kinds=OVERRIDE_KINDS, now=now,
        sfmt=Clockface.for_zone(page.row.time_zone, now),
        feed=calendar_url(request, page.row.id, page.row.calendar_token),
    )  # fmt: skip
    return render(request, "oncall/schedule.html", context, status_code=status)


@router.get("/schedules/{ref}")
def show_schedule(request: Request, user: Reader, ref: str) -> HTMLResponse:
    """Show a schedule: on call now, the next 14 days with gaps, layers, overrides, feed."""
    return schedule_page(request, user, ref)


def _text(value: str, label: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"Keep the {label} under {limit} characters.")
    if "\x00" in value:
        raise ValueError(f"The {label} contains a character that is not allowed.")
    return value.strip()


def parse_local_time(value: str, time_zone: str, label: str) -> datetime:
    """Return a datetime-local value, read as wall-clock time in `time_zone`, in UTC."""
    text = _text(value, f"{label} time", _TIME_MAX)
    if not text:
        raise ValueError(f"Give the {label} date and time.")
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"The {label} {text!r} is not a date and time (YYYY-MM-DD HH:MM)."
        ) from None
    if not 2000 <= local.year <= 2200:
        raise ValueError(f"The {label} must be between the years 2000 and 2200.")
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    # Like handoffs: a time skipped by a DST change moves forward, a repeated one is the first.
    return local_to_utc(local.date(), local.time(), zone_info(time_zone))


@dataclass(frozen=True, slots=True)
class OverrideInput:
    kind: str
    user: str
    replaces: str | None
    starts_at: datetime
    ends_at: datetime
    note: str


def _checked(form: OverrideForm, name: str, check: Callable[[], T]) -> T | None:
    """Run one check, recording its message as the error of field `name`."""
    try:
        return check()
    except ValueError as exc:
        form.errors[name] = str(exc)
        return None


def check_override(form: OverrideForm, time_zone: str, now: datetime) -> OverrideInput | None:
    """Check the form as a person would want it checked; None (with form.errors) if refused."""
    if form.kind not in {k.value for k in OVERRIDE_KINDS}:
        form.errors["kind"] = "Choose what the override does."
    who = _checked(form, "user", lambda: _text(form.user, "user", ID_MAX))
    if who == "":
        form.errors["user"] = "Choose who is on call (or off call)."
    replaces = _checked(form, "replaces", lambda: _text(form.replaces, "replaced user", ID_MAX))
    # The form always offers "replaces"; only a replacement uses it.
    if form.kind != "replace":
        replaces = None
    elif replaces and replaces == who:
        form.errors["replaces"] = "Someone cannot take over from themselves."
    starts = _checked(form, "starts", lambda: parse_local_time(form.starts, time_zone, "start"))
    ends = _checked(form, "ends", lambda: parse_local_time(form.ends, time_zone, "end"))
    note = _checked(form, "note", lambda: _text(form.note, "note", NOTE_MAX))
    if starts is not None and ends is not None:
        if ends <= starts:
            form.errors["ends"] = "The end must be after the start."
        elif ends <= now:
            form.errors["ends"] = "That period is already over; choose an end in the future."
    if form.errors or not who or starts is None or ends is None:
        return None
    return OverrideInput(form.kind, who, replaces or None, starts, ends, note or "")


@router.post("/schedules/{ref}/overrides")
def add_override(
    request: Request,
    user: Writer,
    ref: str,
    kind: Annotated[str, Form()] = "",
    override_user: Annotated[str, Form(alias="user")] = "",
    replaces: Annotated[str, Form()] = "",
    starts: Annotated[str, Form()] = "",
    ends: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Add an override from the form; the times are wall-clock times in the schedule's zone."""
    ctx = get_ctx(request)
    now = ctx.clock()
    form = OverrideForm(kind, override_user, replaces, starts, ends, note)
    try:
        schedule_id = ident(ref, "schedule")
        with ctx.db.read() as session:
            row = q.schedule_row(session, schedule_id)
            time_zone = row.time_zone
    except NotFound as exc:
        return error_page(request, user, 404, exc.message)
    wanted = check_override(form, time_zone, now)
    if wanted is None:
        return schedule_page(request, user, ref, form=form, status=422)
    try:
        with ctx.db.write() as session:
            schedules.add_override(
                session, schedule_id, kind=wanted.kind, user_id=wanted.user,
                replaces=wanted.replaces, starts_at=wanted.starts_at, ends_at=wanted.ends_at,
                note=wanted.note, actor=user.actor.id, now=now,
            )  # fmt: skip
            session.commit()
    except InvalidInput as exc:
        form.errors[exc.field] = exc.message[:1].upper() + exc.message[1:] + "."
        return schedule_page(request, user, ref, form=form, status=422)
    except DomainError as exc:
        return schedule_page(
            request, user, ref, form=form, error=exc.message, status=status_of(exc)
        )
    ctx.wake()
    return RedirectResponse(f"/schedules/{quote(schedule_id, safe='')}#overrides", status_code=303)


@router.post("/schedules/{ref}/overrides/{override_ref}/delete")
def delete_override(request: Request, user: Writer, ref: str, override_ref: str) -> Response:
    """Delete an override."""
    ctx = get_ctx(request)
    try:
        schedule_id = ident(ref, "schedule")
        with ctx.db.read() as session:
            q.schedule_row(session, schedule_id)
    except NotFound as exc:
        return error_page(request, user, 404, exc.message)
    try:
        override_id = record_id(override_ref, "override")
        with ctx.db.write() as session:
            schedules.remove_override(session, schedule_id, override_id)
            session.commit()
    except NotFound as exc:
        # Deleted in another tab, or by someone else a moment ago.
        return schedule_page(request, user, ref, error=exc.message, status=404)
    ctx.wake()
    return RedirectResponse(f"/schedules/{quote(schedule_id, safe='')}#overrides", status_code=303)


# --- escalation policies ---


@router.get("/escalation-policies")
def policy_list(request: Request, user: Reader) -> HTMLResponse:
    """List escalation policies with their steps and who each would page now."""
    ctx = get_ctx(request)
    with ctx.db.read() as session:
        items = policy_views.policy_views(session, q.policies(session), ctx.clock())
    context = base_context(request, user, nav="oncall", sub="policies", items=items)
    return render(request, "oncall/policies.html", context)


@router.get("/escalation-policies/{ref}")
def show_policy(request: Request, user: Reader, ref: str) -> HTMLResponse:
    """Show one escalation policy: steps in time order, repeats, ack timeout, SLA, services."""
    ctx = get_ctx(request)
    try:
        policy_id = ident(ref, "escalation policy")
        with ctx.db.read() as session:
            detail = q.policy_detail(session, policy_id)
            policy = policy_views.policy_views(session, [detail], ctx.clock())[0]
            within = policy_views.respond_within(session)
    except NotFound as exc:
        return error_page(request, user, 404, exc.message)
    context = base_context(
        request, user, nav="oncall", sub="policies", policy=policy, respond_within=within
    )
    return render(request, "oncall/policy.html", context)
