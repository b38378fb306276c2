"""Form posts that change incidents; each is one unit of work attributed to the signed-in user.

Success redirects back to the incident (post/redirect/get, so a reload never repeats a change);
a refused change re-renders the page with the reason and a 4xx status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from tocsin.core.errors import (
    DomainError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    VersionConflict,
)
from tocsin.core.incidents import Status
from tocsin.services import checklists, incidents, timeline
from tocsin.web.auth import WebUser, Writer, get_ctx
from tocsin.web.forms import TEXT_MAX, DeclareForm, load_choices
from tocsin.web.pages import declare_page, incident_number, incident_page

router = APIRouter(include_in_schema=False)

_STATUS_OF_ERROR: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (InvalidInput, 422),
    (IllegalTransition, 409),
    (VersionConflict, 409),
    (Forbidden, 403),
]

Change = Callable[[Session, int], object]


def status_of(exc: DomainError) -> int:
    return next((code for kind, code in _STATUS_OF_ERROR if isinstance(exc, kind)), 400)


def _apply(
    request: Request, user: WebUser, ref: str, change: Change, *, anchor: str = ""
) -> Response:
    """Run `change` in one committed unit of work, then go back to the incident page."""
    ctx = get_ctx(request)
    try:
        number = incident_number(ref)
        with ctx.db.write() as session:
            change(session, number)
            session.commit()
    except DomainError as exc:
        return incident_page(request, user, ref, error=exc.message, status=status_of(exc))
    return RedirectResponse(f"/incidents/{number}{anchor}", status_code=303)


def _text(value: str, what: str) -> str:
    """Return stripped text, or fail when it is empty or too long."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput(f"The {what} is empty.", field=what)
    if len(cleaned) > TEXT_MAX:
        raise InvalidInput(f"The {what} is longer than {TEXT_MAX} characters.", field=what)
    return cleaned


def _is_number(value: str) -> bool:
    # str.isdigit() alone accepts superscripts such as "²", which int() then rejects.
    return value.isascii() and value.isdigit()


def _parse_id(value: str) -> int:
    if not _is_number(value) or int(value) > 2**62:
        raise NotFound(f"no item {value!r}")
    return int(value)


@router.post("/incidents")
def declare(
    request: Request,
    user: Writer,
    title: Annotated[str, Form()] = "",
    severity: Annotated[str, Form()] = "",
    services: Annotated[list[str] | None, Form()] = None,
    description: Annotated[str, Form()] = "",
    customer_impact: Annotated[str, Form()] = "",
) -> Response:
    """Declare an incident from the form; a rejected form comes back filled in (422)."""
    ctx = get_ctx(request)
    form = DeclareForm(title, severity, services or [], description, customer_impact)
    with ctx.db.read() as session:
        choices = load_choices(session)
    if not form.validate(choices):
        return declare_page(request, user, form, status=422)
    try:
        with ctx.db.write() as session:
            row = incidents.declare(session, user.actor, ctx.clock(), form.declaration())
            number = row.id
            session.commit()
        ctx.wake()  # the incident's escalation is due now
    except DomainError as exc:
        # The configuration changed between reading the choices and declaring.
        form.errors[getattr(exc, "field", "form")] = exc.message
        return declare_page(request, user, form, status=status_of(exc))
    return RedirectResponse(f"/incidents/{number}", status_code=303)


@router.post("/incidents/{ref}/acknowledge")
def acknowledge(request: Request, user: Writer, ref: str) -> Response:
    """Acknowledge the incident."""
    now = get_ctx(request).clock()
    return _apply(request, user, ref, lambda s, n: incidents.acknowledge(s, user.actor, now, n))


@router.post("/incidents/{ref}/status")
def change_status(
    request: Request,
    user: Writer,
    ref: str,
    status: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Move the incident to another status."""
    now = get_ctx(request).clock()

    def change(session: Session, number: int) -> object:
        try:
            wanted = Status(status)
        except ValueError:
            raise InvalidInput(f"Unknown status {status!r}.", field="status") from None
        text = note.strip()[:TEXT_MAX] or None
        return incidents.change_status(session, user.actor, now, number, wanted, note=text)

    return _apply(request, user, ref, change)


@router.post("/incidents/{ref}/resolve")
def resolve(
    request: Request,
    user: Writer,
    ref: str,
    resolution: Annotated[str, Form()] = "",
) -> Response:
    """Resolve the incident, recording how it was resolved."""
    now = get_ctx(request).clock()

    def change(session: Session, number: int) -> object:
        text = resolution.strip()
        if len(text) > TEXT_MAX:
            raise InvalidInput(
                f"The resolution is longer than {TEXT_MAX} characters.", field="resolution"
            )
        return incidents.change_status(
            session, user.actor, now, number, Status.RESOLVED, resolution=text or None
        )

    return _apply(request, user, ref, change)


@router.post("/incidents/{ref}/roles")
def assign_role(
    request: Request,
    user: Writer,
    ref: str,
    role: Annotated[str, Form()] = "",
    assignee: Annotated[str, Form()] = "",
) -> Response:
    """Give an incident role to a user, or clear it (empty assignee)."""
    now = get_ctx(request).clock()
    return _apply(
        request, user, ref,
        lambda s, n: incidents.assign_role(s, user.actor, now, n, role, assignee or None),
        anchor="#roles",
    )  # fmt: skip


@router.post("/incidents/{ref}/notes")
def add_note(
    request: Request, user: Writer, ref: str, text: Annotated[str, Form()] = ""
) -> Response:
    """Add a note to the timeline."""
    now = get_ctx(request).clock()
    return _apply(
        request, user, ref,
        lambda s, n: timeline.add_note(s, user.actor, now, n, _text(text, "note")),
        anchor="#note-form",
    )  # fmt: skip


@router.post("/incidents/{ref}/checklist/{item_id}")
def tick(
    request: Request, user: Writer, ref: str, item_id: str, done: Annotated[str, Form()] = "1"
) -> Response:
    """Tick (done=1) or untick (done=0) a checklist item."""
    now = get_ctx(request).clock()
    return _apply(
        request, user, ref,
        lambda s, n: checklists.tick(s, user.actor, now, n, _parse_id(item_id), done != "0"),
        anchor="#checklist",
    )  # fmt: skip


@router.post("/incidents/{ref}/events/{event_id}/pin")
def pin(
    request: Request, user: Writer, ref: str, event_id: str, pinned: Annotated[str, Form()] = "1"
) -> Response:
    """Pin (pinned=1) or unpin (pinned=0) a timeline event."""
    now = get_ctx(request).clock()
    return _apply(
        request, user, ref,
        lambda s, n: timeline.set_pinned(s, user.actor, now, n, _parse_id(event_id), pinned != "0"),
        anchor=f"#event-{event_id}" if _is_number(event_id) else "",
    )  # fmt: skip


@router.post("/incidents/{ref}/events/{event_id}/edit")
def edit_note(
    request: Request, user: Writer, ref: str, event_id: str, text: Annotated[str, Form()] = ""
) -> Response:
    """Replace a note's text; the earlier text stays visible under '(edited)'."""
    now = get_ctx(request).clock()

    def change(session: Session, number: int) -> object:
        new_text = _text(text, "note")
        return timeline.edit_note(session, user.actor, now, number, _parse_id(event_id), new_text)

    anchor = f"#event-{event_id}" if _is_number(event_id) else ""
    return _apply(request, user, ref, change, anchor=anchor)
