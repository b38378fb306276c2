"""The signed-in person's paging settings: contact methods (added unverified, verified with the
code sent to them, removed) and notification rules, through services.contact_methods.

Any signed-in user may change their own settings, viewers too: a viewer can still be paged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from tocsin.api.links import links_of
from tocsin.core.durations import format_duration
from tocsin.core.errors import DomainError, InvalidInput, NotFound
from tocsin.services import contact_methods as cm
from tocsin.services import oncall_queries as q
from tocsin.storage.oncall_tables import ContactMethodRow
from tocsin.web.actions import status_of
from tocsin.web.auth import Checked, Reader, WebUser, get_ctx
from tocsin.web.forms import Choice
from tocsin.web.pages import base_context
from tocsin.web.templating import render

router = APIRouter(include_in_schema=False)

METHOD_TYPES = [
    Choice("email", "Email"), Choice("sms", "SMS (text message)"), Choice("voice", "Voice call"),
    Choice("slack", "Slack (direct message)"), Choice("ntfy", "ntfy push"),
    Choice("webhook", "Webhook (HTTP POST)"),
]  # fmt: skip
# How the form names each type's target in messages.
TARGET_WORDS = {
    "email": "address", "webhook": "URL", "sms": "phone number", "voice": "phone number",
    "slack": "Slack member id", "ntfy": "ntfy topic",
}  # fmt: skip
URGENCY_LABELS = {"high": "High urgency", "low": "Low urgency"}
NAME_MAX = 200
TARGET_MAX = 2048
CODE_MAX = 32
# Blank rows offered under the rules each urgency has, to add more without JavaScript.
SPARE_RULES = 2


@dataclass(frozen=True, slots=True)
class MethodView:
    id: str
    type: str
    target: str
    name: str
    from_config: bool
    verified: bool
    code_expires_at: datetime | None

    @property
    def label(self) -> str:
        """Return how a rule's select names this method."""
        what = self.name or self.target
        return f"{what} ({self.type}{'' if self.verified else ', not verified'})"


@dataclass(frozen=True, slots=True)
class RuleRow:
    after: str
    via: str


@dataclass(slots=True)
class ProfileForms:
    """Forms as typed, kept so a refused one comes back filled in."""

    add_type: str = "email"
    add_target: str = ""
    add_name: str = ""
    rules: dict[str, list[RuleRow]] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _delay(seconds: int) -> str:
    """Return a rule's delay as typed in the form: '0m', '5m', '1h30m'."""
    return format_duration(timedelta(seconds=seconds)) if seconds else "0m"


def _method_view(row: ContactMethodRow) -> MethodView:
    return MethodView(
        id=row.id,
        type=row.type,
        target=row.target,
        name=row.name,
        from_config=row.source != "user",
        verified=row.verified_at is not None,
        code_expires_at=row.verify_expires_at,
    )


def profile_page(
    request: Request,
    user: WebUser,
    *,
    forms: ProfileForms | None = None,
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> HTMLResponse:
    """Render the profile (with a refused form or an error banner)."""
    ctx = get_ctx(request)
    forms = forms or ProfileForms()
    with ctx.db.read() as session:
        methods = [_method_view(r) for r in cm.methods(session, user.id)]
        saved = cm.rules(session, user.id)
    known = {m.id: m for m in methods}
    rules = forms.rules or {
        urgency: [RuleRow(_delay(r.after_s), r.contact_method_id) for r in saved.get(urgency, [])]
        for urgency in cm.URGENCIES
    }
    # Rules as saved, in words; a rule through an unverified or removed method is flagged.
    current = {
        urgency: [
            (
                _delay(r.after_s),
                known.get(r.contact_method_id),
                r.contact_method_id,
            )
            for r in saved.get(urgency, [])
        ]
        for urgency in cm.URGENCIES
    }
    token = q.user_calendar_token(links_of(ctx).secret, user.id)
    base = ctx.settings.public_url or str(request.base_url)
    feed = f"{base.rstrip('/')}/api/v1/users/{user.id}/calendar.ics?token={token}"
    if forms.errors and not error:
        error = " ".join(forms.errors.values())
    context = base_context(
        request, user, nav="oncall", sub="profile", methods=methods, rules=rules,
        current=current, forms=forms, error=error, notice=notice, types=METHOD_TYPES,
        urgencies=URGENCY_LABELS, spare=SPARE_RULES, feed=feed,
    )  # fmt: skip
    return render(request, "oncall/profile.html", context, status_code=status)


@router.get("/profile")
def show_profile(request: Request, user: Reader, sent: str = "") -> HTMLResponse:
    """Show the user's contact methods and notification rules."""
    notice = ""
    if sent:
        notice = "We sent a code to the new contact method. Enter it below to start using it."
    return profile_page(request, user, notice=notice)


@router.get("/me")
def me() -> Response:
    """The profile under the name other tools use."""
    return RedirectResponse("/profile", status_code=303)


def _status(exc: DomainError) -> int:
    if isinstance(exc, cm.TooManyAttempts):
        return 429
    if isinstance(exc, cm.Conflict):
        return 409
    return status_of(exc)


def _sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "?", "!")) else message + "."


def _clean(value: str, label: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidInput(f"Keep the {label} under {limit} characters", field=label)
    if "\x00" in value:
        raise InvalidInput(f"The {label} contains a character that is not allowed", field=label)
    return value.strip()


def _change(
    request: Request,
    user: WebUser,
    job: Callable[[Session, datetime, str], str | None],
    *,
    forms: ProfileForms | None = None,
    anchor: str = "",
) -> Response:
    """Run `job` in one committed unit of work; a refusal it returns is shown after commit."""
    ctx = get_ctx(request)
    secret = links_of(ctx).secret
    try:
        with ctx.db.write() as session:
            refused = job(session, ctx.clock(), secret)
            session.commit()
    except DomainError as exc:
        return profile_page(
            request, user, forms=forms, error=_sentence(exc.message), status=_status(exc)
        )
    ctx.wake()
    if refused:
        # A wrong code: its attempt is committed and counted, then the page says so.
        return profile_page(request, user, forms=forms, error=_sentence(refused), status=422)
    return RedirectResponse(f"/profile{anchor}", status_code=303)


@router.post("/profile/contact-methods")
def add_method(
    request: Request,
    user: Checked,
    type: Annotated[str, Form()] = "",  # noqa: A002 - the form field's name
    target: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """Add a contact method (email, SMS, voice, Slack, ntfy, webhook) unverified; send a code."""
    forms = ProfileForms(
        add_type=type[:20], add_target=target[:TARGET_MAX], add_name=name[:NAME_MAX]
    )
    added: list[str] = []

    def job(session: Session, now: datetime, secret: str) -> None:
        if type not in TARGET_WORDS:
            raise InvalidInput("Choose one of the contact method types", field="type")
        what = TARGET_WORDS[type]
        cleaned = _clean(target, what, TARGET_MAX)
        if not cleaned:
            raise InvalidInput(f"Give the {what} to reach you at", field="target")
        owner = cm.owner(session, user.actor, user.id)
        row = cm.add(
            session, owner, kind=type, target=cleaned, name=_clean(name, "name", NAME_MAX),
            secret=secret, now=now,
        )  # fmt: skip
        added.append(row.id)

    response = _change(request, user, job, forms=forms)
    if isinstance(response, RedirectResponse) and added:
        return RedirectResponse(f"/profile?sent=1#method-{added[0]}", status_code=303)
    return response


def _own_method(session: Session, user: WebUser, method_id: str) -> ContactMethodRow:
    owner = cm.owner(session, user.actor, user.id)
    if len(method_id) > 64 or not method_id.isprintable():
        raise NotFound("That contact method was not found")
    return cm.method(session, owner.id, method_id)


@router.post("/profile/contact-methods/{method_id}/verify")
def verify_method(
    request: Request, user: Checked, method_id: str, code: Annotated[str, Form()] = ""
) -> Response:
    """Verify a contact method with the code sent to it."""

    def job(session: Session, now: datetime, secret: str) -> str | None:
        row = _own_method(session, user, method_id)
        cleaned = _clean(code, "code", CODE_MAX)
        if not cleaned:
            raise InvalidInput("Enter the code from the message", field="code")
        return cm.verify(session, row, cleaned, secret=secret, now=now)

    return _change(request, user, job, anchor=f"#method-{method_id[:64]}")


@router.post("/profile/contact-methods/{method_id}/send-code")
def resend_code(request: Request, user: Checked, method_id: str) -> Response:
    """Send a new verification code (at most one a minute)."""

    def job(session: Session, now: datetime, secret: str) -> None:
        row = _own_method(session, user, method_id)
        cm.send_code(session, row, secret=secret, now=now)

    response = _change(request, user, job)
    if isinstance(response, RedirectResponse):
        return RedirectResponse(f"/profile?sent=1#method-{method_id[:64]}", status_code=303)
    return response


@router.post("/profile/contact-methods/{method_id}/remove")
def remove_method(request: Request, user: Checked, method_id: str) -> Response:
    """Remove a contact method the user added (and the rules that used it)."""

    def job(session: Session, now: datetime, secret: str) -> None:
        cm.remove(session, _own_method(session, user, method_id))

    return _change(request, user, job, anchor="#methods")


def _rule_rows(afters: list[str], vias: list[str]) -> list[RuleRow]:
    count = max(len(afters), len(vias))
    afters = afters + [""] * (count - len(afters))
    vias = vias + [""] * (count - len(vias))
    return [RuleRow(a[:40], v[:64]) for a, v in zip(afters, vias, strict=True)]


@router.post("/profile/notification-rules")
def save_rules(
    request: Request,
    user: Checked,
    high_after: Annotated[list[str] | None, Form()] = None,
    high_via: Annotated[list[str] | None, Form()] = None,
    low_after: Annotated[list[str] | None, Form()] = None,
    low_via: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Replace the user's notification rules with the rows of the form (blank rows skipped)."""
    typed = {
        "high": _rule_rows(high_after or [], high_via or []),
        "low": _rule_rows(low_after or [], low_via or []),
    }
    forms = ProfileForms(rules=typed)

    def job(session: Session, now: datetime, secret: str) -> None:
        raw: dict[str, list[tuple[str, str]]] = {}
        for urgency, rows in typed.items():
            raw[urgency] = []
            for index, row in enumerate(rows, start=1):
                after, via = row.after.strip(), row.via.strip()
                if not via and not after:
                    continue
                if not via:
                    where = f"{URGENCY_LABELS[urgency]}, rule {index}"
                    raise InvalidInput(f"{where}: choose a contact method", field=urgency)
                raw[urgency].append((after or "0m", via))
        try:
            wanted = cm.parse_rules(raw)
        except InvalidInput as exc:
            raise InvalidInput(_rule_message(exc, raw), field=exc.field) from None
        try:
            cm.set_rules(session, user.id, wanted)
        except InvalidInput as exc:
            # Its index counts the sorted rules; the message names the method itself.
            raise InvalidInput(_rule_message(exc, {}), field=exc.field) from None

    return _change(request, user, job, forms=forms, anchor="#rules")


def _rule_message(exc: InvalidInput, raw: dict[str, list[tuple[str, str]]]) -> str:
    """Name the rule a service error is about: 'high[1].after' → 'High urgency, 5m via …'."""
    urgency, _, rest = exc.field.partition("[")
    if urgency not in URGENCY_LABELS:
        return exc.message
    label = URGENCY_LABELS[urgency]
    index = rest.split("]", 1)[0]
    if index.isascii() and index.isdigit() and int(index) < len(raw.get(urgency, [])):
        after, via = raw[urgency][int(index)]
        return f"{label}, the rule '{after[:40]} via {via[:64]}': {exc.message}"
    return f"{label}: {exc.message}"
