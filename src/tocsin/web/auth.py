"""Who is using the web UI: password login, the session cookie, CSRF checks, scopes."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from tocsin.api.context import AppContext
from tocsin.api.deps import CSRF_HEADER, SESSION_COOKIE, read_session
from tocsin.core.actors import Actor, Scope
from tocsin.services import access
from tocsin.storage.tables import UserRow
from tocsin.web.templating import Clockface, render

# Login has no session to hold a CSRF token yet, so it uses a double-submit token: a random
# value in its own cookie that the form must echo. A foreign site can make the browser send
# the cookie but cannot read it to put it in the form (login CSRF would sign a victim into an
# attacker's account).
LOGIN_CSRF_COOKIE = "tocsin_login_csrf"
LOGIN_CSRF_MAX_AGE = 3600


class LoginRequired(Exception):
    """No valid session: pages redirect to /login."""


class WebForbidden(Exception):
    """The user may not do this (or the request failed its CSRF check)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class WebUser:
    """The signed-in user of one request."""

    id: str
    name: str
    time_zone: str | None
    actor: Actor
    csrf: str

    @property
    def can_write(self) -> bool:
        """Return True when the user may change incidents (responder or admin)."""
        return self.actor.can(Scope.RESPOND)


def get_ctx(request: Request) -> AppContext:
    """Return the application context."""
    ctx: AppContext = request.app.state.ctx
    return ctx


def session_user(request: Request) -> WebUser | None:
    """Return the user of the session cookie, or None (absent, forged, expired, archived)."""
    ctx = get_ctx(request)
    data = read_session(ctx, request)
    if data is None or not isinstance(data.get("csrf"), str):
        return None
    with ctx.db.read() as session:
        user = session.get(UserRow, str(data.get("uid", "")))
        if user is None or user.archived:
            return None
        return WebUser(
            id=user.id,
            name=user.name,
            time_zone=user.time_zone,
            actor=access.actor_for_user(user, "web"),
            csrf=data["csrf"],
        )


def reader(request: Request) -> WebUser:
    """Demand a signed-in user (any role may read)."""
    user = session_user(request)
    if user is None:
        raise LoginRequired
    return user


async def csrf_checked(request: Request) -> WebUser:
    """Demand a signed-in user whose form (or htmx header) carries the session's CSRF token."""
    user = reader(request)
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        form = await request.form()
        value = form.get("csrf", "")
        sent = value if isinstance(value, str) else ""
    if not sent or not hmac.compare_digest(sent.encode(), user.csrf.encode()):
        raise WebForbidden(
            "This form has expired or did not come from Tocsin. Reload the page and try again."
        )
    return user


def writer(user: Annotated[WebUser, Depends(csrf_checked)]) -> WebUser:
    """Demand a CSRF-checked user allowed to change incidents."""
    if not user.can_write:
        raise WebForbidden("Your account can read incidents but not change them (viewer role).")
    return user


Reader = Annotated[WebUser, Depends(reader)]
Writer = Annotated[WebUser, Depends(writer)]
Checked = Annotated[WebUser, Depends(csrf_checked)]


def clockface(request: Request, user: WebUser | None) -> Clockface:
    """Return the time formatter for this user."""
    return Clockface.for_zone(user.time_zone if user else None, get_ctx(request).clock())


def safe_next(target: str | None) -> str:
    """Return a same-site path to go to after login; anything else goes to the incident list."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/incidents"


router = APIRouter(include_in_schema=False)


def _login_page(
    request: Request, *, error: str = "", login: str = "", next_: str = "", status: int = 200
) -> HTMLResponse:
    ctx = get_ctx(request)
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if len(token) < 32:
        token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"user": None, "error": error, "login": login, "next": next_, "login_csrf": token},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=ctx.settings.secure_cookies,
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:  # noqa: A002 - the query parameter's name
    """Show the login form (or go on when already signed in)."""
    if session_user(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_=next)


def _user_id_for(ctx: AppContext, login: str) -> str:
    """Resolve an email address to its user id; anything else is taken as the id itself."""
    if "@" not in login:
        return login
    with ctx.db.read() as session:
        ids = list(
            session.scalars(
                select(UserRow.id).where(
                    func.lower(UserRow.email) == login.lower(), UserRow.archived.is_(False)
                )
            )
        )
    # Two users sharing an address cannot log in by it: guessing which one is meant is unsafe.
    return ids[0] if len(ids) == 1 else login


@router.post("/login")
def sign_in(
    request: Request,
    login: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",  # noqa: A002 - the form field's name
) -> Response:
    """Check the password and start a session."""
    ctx = get_ctx(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not csrf or not hmac.compare_digest(csrf.encode(), expected.encode()):
        return _login_page(
            request,
            error="The login form expired. Please try again.",
            login=login,
            next_=next,
            status=403,
        )
    login = login.strip()[:320]
    next = next[:2000]  # noqa: A001
    with ctx.db.read() as session:
        # A read session: argon2 takes tens of milliseconds, and a write session would hold the
        # SQLite write lock (and so every incident update) for that long on each attempt.
        user = access.authenticate(session, _user_id_for(ctx, login), password)
        rehashed = user.password_hash if user is not None and user in session.dirty else None
        uid = user.id if user is not None else None
    if uid is None:
        return _login_page(
            request, error="Unknown user or wrong password.", login=login, next_=next, status=401
        )
    if rehashed:
        with ctx.db.write() as session:
            row = session.get(UserRow, uid)
            if row is not None:
                row.password_hash = rehashed
                session.commit()
    cookie = ctx.signer.dumps({"uid": uid, "csrf": secrets.token_urlsafe(32)})
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ctx.settings.session_max_age,
        httponly=True,
        samesite="lax",
        secure=ctx.settings.secure_cookies,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def sign_out(_user: Checked) -> Response:
    """End the session."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def login_redirect(request: Request) -> Response:
    """Send an anonymous request to the login page, coming back afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/login" if request.method != "GET" else f"/login?next={quote(here, safe='')}"
    if request.headers.get("hx-request"):
        # htmx would swap a redirected login page into the timeline; make it load the page.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
