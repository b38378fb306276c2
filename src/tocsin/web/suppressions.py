"""Silences and maintenance windows: list, create, end early.

Both keep alerts from paging without hiding them: suppressed alerts are still recorded. Those
from the configuration file are listed too, but only `tocsin apply` changes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.api.alerts import silence_out, window_out
from tocsin.core.alerts import TERM_OPERATORS, matchers_from_terms
from tocsin.core.durations import parse_duration
from tocsin.core.errors import DomainError, InvalidInput, NotFound
from tocsin.services import alert_groups
from tocsin.storage.tables import MaintenanceWindowRow, SilenceRow
from tocsin.web.actions import status_of
from tocsin.web.auth import Reader, WebUser, Writer, clockface, get_ctx
from tocsin.web.forms import load_choices
from tocsin.web.pages import base_context
from tocsin.web.templating import render

router = APIRouter(include_in_schema=False)

COMMENT_MAX = 2000
LIST_MAX = 500
_SYMBOL = {op: symbol for symbol, op in TERM_OPERATORS}


def parse_matcher_lines(text: str) -> dict[str, Any]:
    """Parse one matcher a line: name=value, name!=value, name=~regex or name!~regex."""
    numbered = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not numbered:
        raise InvalidInput("Give at least one matcher, e.g. alertname=DiskFull.", field="matchers")
    for number, line in numbered:
        # One line at a time so the error can say which line is wrong.
        try:
            matchers_from_terms([line])
        except ValueError as exc:
            raise InvalidInput(f"Line {number}: {exc}.", field="matchers") from None
    try:
        return matchers_from_terms([line for _, line in numbered])
    except ValueError as exc:
        raise InvalidInput(f"{exc}.", field="matchers") from None


def matcher_lines(matchers: Mapping[str, Any]) -> list[str]:
    """Show matchers in the form the create form reads back (other operators spelled out)."""
    out = []
    for name, condition in matchers.items():
        if isinstance(condition, Mapping):
            for op, value in condition.items():
                symbol = _SYMBOL.get(op)
                out.append(f"{name}{symbol}{value}" if symbol else f"{name} {op} {value}")
        elif isinstance(condition, list):
            out.append(f"{name} in {', '.join(map(str, condition))}")
        else:
            out.append(f"{name}={condition}")
    return out


def _when(text: str, tz: Any, what: str) -> datetime | None:
    """Read a datetime-local field, which the browser sends in the viewer's own time zone."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        message = f"The {what} time {text!r} is not a date and time."
        raise InvalidInput(message, field=what) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _until(start: datetime, duration: str, end: datetime | None) -> datetime:
    if duration.strip() and end is not None:
        raise InvalidInput("Give a duration or an end time, not both.", field="duration")
    if end is not None:
        return end
    try:
        return start + parse_duration(duration or "")
    except ValueError as exc:
        raise InvalidInput(str(exc).capitalize() + ".", field="duration") from None


def comment_text(value: str) -> str:
    """Return a stripped comment, or fail when it is too long."""
    text = value.strip()
    if len(text) > COMMENT_MAX:
        raise InvalidInput(f"Keep the comment under {COMMENT_MAX} characters.", field="comment")
    return text


def record_id(value: str, what: str) -> int:
    """Return the id in a path or form value; anything else is a NotFound naming `what`."""
    value = value.strip()
    # str.isdigit() alone accepts superscripts such as "²", which int() then rejects.
    if not (value.isascii() and value.isdigit()) or int(value) > 2**62:
        raise NotFound(f"{what} {value!r} not found")
    return int(value)


@dataclass(slots=True)
class SuppressionForm:
    """A create form as typed, kept so a refused one comes back filled in."""

    matchers: str = ""
    service: str = ""
    start: str = ""
    duration: str = "2h"
    end: str = ""
    comment: str = ""


def _write(request: Request, change: Callable[[Session, datetime], object]) -> None:
    ctx = get_ctx(request)
    with ctx.db.write() as session:
        change(session, ctx.clock())
        session.commit()
    # A silence ending or a window starting changes what pages: let the engine look again.
    ctx.wake()


# --- silences ---


def silences_page(
    request: Request, user: WebUser, form: SuppressionForm, *, error: str = "", status: int = 200
) -> HTMLResponse:
    """Render current and future silences and the create form."""
    ctx = get_ctx(request)
    now = ctx.clock()
    with ctx.db.read() as session:
        rows = session.scalars(
            select(SilenceRow)
            .where(SilenceRow.ends_at > now)
            .order_by(SilenceRow.starts_at, SilenceRow.id)
            .limit(LIST_MAX)
        )
        items = [silence_out(r, now) for r in rows]
        choices = load_choices(session)
    context = base_context(
        request, user, nav="alerts", sub="silences", items=items, form=form, error=error,
        choices=choices, lines=matcher_lines,
    )  # fmt: skip
    return render(request, "alerts/silences.html", context, status_code=status)


@router.get("/silences")
def silences(request: Request, user: Reader) -> HTMLResponse:
    """List current and future silences."""
    return silences_page(request, user, SuppressionForm())


@router.post("/silences")
def create_silence(
    request: Request,
    user: Writer,
    matchers: Annotated[str, Form()] = "",
    duration: Annotated[str, Form()] = "2h",
    comment: Annotated[str, Form()] = "",
) -> Response:
    """Create a silence starting now."""
    form = SuppressionForm(matchers=matchers, duration=duration, comment=comment)
    try:
        spec = parse_matcher_lines(matchers)

        def change(session: Session, now: datetime) -> object:
            until = _until(now, duration, None)
            return alert_groups.create_silence(
                session, user.actor, now, spec, None, until, comment_text(comment)
            )

        _write(request, change)
    except DomainError as exc:
        return silences_page(request, user, form, error=exc.message, status=status_of(exc))
    return RedirectResponse("/silences", status_code=303)


@router.post("/silences/{ref}/expire")
def expire_silence(request: Request, user: Writer, ref: str) -> Response:
    """End a silence now (it stays on record)."""
    try:
        silence_id = record_id(ref, "silence")
        _write(request, lambda s, now: alert_groups.expire_silence(s, now, silence_id))
    except DomainError as exc:
        return silences_page(
            request, user, SuppressionForm(), error=exc.message, status=status_of(exc)
        )
    return RedirectResponse("/silences", status_code=303)


# --- maintenance windows ---


def maintenance_page(
    request: Request, user: WebUser, form: SuppressionForm, *, error: str = "", status: int = 200
) -> HTMLResponse:
    """Render current and scheduled maintenance windows and the create form."""
    ctx = get_ctx(request)
    now = ctx.clock()
    with ctx.db.read() as session:
        rows = session.scalars(
            select(MaintenanceWindowRow)
            .where(MaintenanceWindowRow.ends_at > now)
            .order_by(MaintenanceWindowRow.starts_at, MaintenanceWindowRow.id)
            .limit(LIST_MAX)
        )
        items = [window_out(r, now) for r in rows]
        choices = load_choices(session)
    context = base_context(
        request, user, nav="alerts", sub="maintenance", items=items, form=form, error=error,
        choices=choices,
    )  # fmt: skip
    return render(request, "alerts/maintenance.html", context, status_code=status)


@router.get("/maintenance")
def maintenance(request: Request, user: Reader) -> HTMLResponse:
    """List current and scheduled maintenance windows."""
    return maintenance_page(request, user, SuppressionForm(duration=""))


@router.post("/maintenance")
def create_window(
    request: Request,
    user: Writer,
    service: Annotated[str, Form()] = "",
    start: Annotated[str, Form()] = "",
    duration: Annotated[str, Form()] = "",
    end: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
) -> Response:
    """Schedule a maintenance window on a service (from now when no start is given)."""
    form = SuppressionForm(
        service=service, start=start, duration=duration, end=end, comment=comment
    )
    tz = clockface(request, user).tz
    try:
        if not service:
            raise InvalidInput("Choose the service under maintenance.", field="service")
        begins = _when(start, tz, "start")
        ends = _when(end, tz, "end")

        def change(session: Session, now: datetime) -> object:
            first = begins or now
            if ends is None and not duration.strip():
                raise InvalidInput("Give a duration (e.g. 2h) or an end time.", field="duration")
            return alert_groups.create_window(
                session, user.actor, now, service, first, _until(first, duration, ends),
                comment_text(comment),
            )  # fmt: skip

        _write(request, change)
    except DomainError as exc:
        return maintenance_page(request, user, form, error=exc.message, status=status_of(exc))
    return RedirectResponse("/maintenance", status_code=303)


@router.post("/maintenance/{ref}/end")
def end_window(request: Request, user: Writer, ref: str) -> Response:
    """End a maintenance window now (or cancel one that has not started)."""
    try:
        window_id = record_id(ref, "maintenance window")
        _write(request, lambda s, now: alert_groups.end_window(s, now, window_id))
    except DomainError as exc:
        return maintenance_page(
            request, user, SuppressionForm(duration=""), error=exc.message, status=status_of(exc)
        )
    return RedirectResponse("/maintenance", status_code=303)
