"""Dependencies: the app context, the authenticated actor, and scope checks."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tocsin.api.context import AppContext
from tocsin.core.actors import Actor, Scope
from tocsin.services import access
from tocsin.storage.tables import UserRow

SESSION_COOKIE = "tocsin_session"
CSRF_HEADER = "x-csrf-token"
_SOURCE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_bearer = HTTPBearer(auto_error=False, description="API token (tocsin token create)")

# Token lookups are cached briefly: a hash lookup per request is the largest fixed cost of a
# small API call. Revocation therefore takes effect within this many seconds.
TOKEN_CACHE_SECONDS = 5.0
_token_cache: dict[str, tuple[float, Actor | None]] = {}


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def read_session(ctx: AppContext, request: Request) -> dict[str, Any] | None:
    """Return the signed session cookie's data, or None when absent, forged or expired."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = ctx.signer.loads(raw, max_age=ctx.settings.session_max_age)
    except Exception:  # noqa: BLE001 - any bad cookie means "not logged in"
        return None
    return data if isinstance(data, dict) else None


def _source(request: Request, default: str) -> str:
    wanted = request.headers.get("x-tocsin-source", "").strip().lower()
    return wanted if _SOURCE.match(wanted) else default


def _token_actor(ctx: AppContext, token: str, source: str) -> Actor | None:
    """Look a token up in the database and remember the answer (optional_actor reads it)."""
    with ctx.db.read() as session:
        actor = access.actor_for_token(session, token, admin_token=ctx.settings.admin_token)
    if len(_token_cache) > 10_000:
        _token_cache.clear()
    _token_cache[token] = (time.monotonic(), actor)
    return actor.with_source(source) if actor else None


async def optional_actor(
    request: Request,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor | None:
    """Return the caller; only a token cache miss or a session cookie leaves the event loop."""
    if credentials is not None:
        cached = _token_cache.get(credentials.credentials)
        if cached and time.monotonic() - cached[0] < TOKEN_CACHE_SECONDS:
            if cached[1] is None:
                raise HTTPException(
                    401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"}
                )
            return cached[1].with_source(_source(request, "api"))
    return await anyio.to_thread.run_sync(_resolve_actor, request, ctx, credentials)


def _resolve_actor(
    request: Request, ctx: AppContext, credentials: HTTPAuthorizationCredentials | None
) -> Actor | None:
    if credentials is not None:
        actor = _token_actor(ctx, credentials.credentials, _source(request, "api"))
        if actor is None:
            raise HTTPException(
                401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"}
            )
        return actor
    data = read_session(ctx, request)
    if data is None:
        return None
    if request.method in _UNSAFE:
        # Cookie-authenticated writes must prove they come from our own pages (CSRF).
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, str(data.get("csrf", ""))):
            raise HTTPException(403, "missing or wrong CSRF token")
    with ctx.db.read() as session:
        user = session.get(UserRow, str(data.get("uid", "")))
        if user is None or user.archived:
            return None
        return access.actor_for_user(user, _source(request, "web"))


async def current_actor(actor: Annotated[Actor | None, Depends(optional_actor)]) -> Actor:
    if actor is None:
        raise HTTPException(401, "authentication required", headers={"WWW-Authenticate": "Bearer"})
    return actor


def require(scope: Scope) -> Callable[[Actor], Awaitable[Actor]]:
    """Build a dependency that demands `scope` (403 when the actor lacks it)."""

    async def _check(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if not actor.can(scope):
            raise HTTPException(403, f"this needs the {scope.value!r} scope")
        return actor

    return _check


Reader = Annotated[Actor, Depends(require(Scope.READ))]
Responder = Annotated[Actor, Depends(require(Scope.RESPOND))]
Admin = Annotated[Actor, Depends(require(Scope.ADMIN))]
