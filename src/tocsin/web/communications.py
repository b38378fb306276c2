"""The incident page's "Stakeholder update" panel: when the next update is due, who hears it,
the commander's form with an htmx preview of every audience's copy, and sending it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tocsin.api.links import public_base_url
from tocsin.core.errors import DomainError, InvalidInput
from tocsin.core.incidents import Status
from tocsin.services import communications
from tocsin.services.comm_context import UpdateText
from tocsin.web.actions import status_of
from tocsin.web.auth import Writer, get_ctx
from tocsin.web.forms import TEXT_MAX
from tocsin.web.pages import base_context, incident_number, incident_page
from tocsin.web.templating import render

router = APIRouter(include_in_schema=False)
ETA_MAX = 200


def _form(message: str, next_steps: str, eta: str, status: str) -> tuple[UpdateText, Status | None]:
    """Return the update a form describes, or raise InvalidInput naming what to fix."""
    text = message.strip()
    if not text:
        raise InvalidInput("The update is empty: write what is happening.", field="message")
    if len(text) > TEXT_MAX or len(next_steps) > TEXT_MAX:
        raise InvalidInput(f"The update is longer than {TEXT_MAX} characters.", field="message")
    if len(eta.strip()) > ETA_MAX:
        raise InvalidInput(f"The ETA is longer than {ETA_MAX} characters.", field="eta")
    wanted = None
    if status:
        try:
            wanted = Status(status)
        except ValueError:
            raise InvalidInput(f"Unknown status {status!r}.", field="status") from None
    return UpdateText(text, next_steps.strip(), eta.strip()), wanted


Field = Annotated[str, Form()]


@dataclass(frozen=True, slots=True)
class Copy:
    """One wording of a preview and the audiences that get it word for word."""

    title: str
    body: str
    audiences: list[communications.AudiencePreview]


def copies(preview: communications.Preview) -> list[Copy]:
    """Group a preview's audiences by identical wording, so each text is shown once."""
    out: dict[tuple[str, str], Copy] = {}
    for item in preview.audiences:
        key = (item.title, item.body)
        out.setdefault(key, Copy(item.title, item.body, [])).audiences.append(item)
    return list(out.values())


@router.post("/incidents/{ref}/updates/preview")
def preview(
    request: Request,
    user: Writer,
    ref: str,
    message: Field = "",
    next_steps: Field = "",
    eta: Field = "",
    status: Field = "",
) -> HTMLResponse:
    """Return every audience's copy of the update being written (an htmx fragment)."""
    ctx = get_ctx(request)
    context = base_context(request, user, preview=None, copies=[], problem="")
    try:
        number = incident_number(ref)
        text, wanted = _form(message, next_steps, eta, status)
        with ctx.db.read() as session:
            found = communications.preview_update(
                session, number, ctx.clock(), text, status=wanted,
                base_url=public_base_url(ctx.settings),
            )  # fmt: skip
        context.update(preview=found, copies=copies(found))
    except DomainError as exc:
        # 200 so htmx swaps the reason in where the preview would be.
        context["problem"] = exc.message
    return render(request, "comm/_preview.html", context)


@router.post("/incidents/{ref}/updates")
def send(
    request: Request,
    user: Writer,
    ref: str,
    message: Field = "",
    next_steps: Field = "",
    eta: Field = "",
    status: Field = "",
) -> Response:
    """Send the update to every audience and go back to the incident."""
    ctx = get_ctx(request)
    try:
        number = incident_number(ref)
        text, wanted = _form(message, next_steps, eta, status)
        with ctx.db.write() as session:
            communications.send_update(
                session, user.actor, ctx.clock(), number, text, status=wanted,
                base_url=public_base_url(ctx.settings),
            )  # fmt: skip
            session.commit()
    except DomainError as exc:
        return incident_page(request, user, ref, error=exc.message, status=status_of(exc))
    ctx.wake()  # the messages are due now
    return RedirectResponse(f"/incidents/{number}#stakeholder", status_code=303)
