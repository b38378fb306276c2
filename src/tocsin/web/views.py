"""Wire the web UI into the application: routes, static files, and its own error pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from tocsin.web import action_links, actions, alerts, auth, oncall, pages
from tocsin.web.templating import STATIC_DIR


def install(app: FastAPI) -> None:
    """Register the UI routes on `app`."""
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(alerts.router)
    app.include_router(action_links.router)
    app.include_router(oncall.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(auth.LoginRequired)
    async def _login_required(request: Request, _exc: auth.LoginRequired) -> Response:
        return auth.login_redirect(request)

    @app.exception_handler(auth.WebForbidden)
    async def _forbidden(request: Request, exc: auth.WebForbidden) -> Response:
        # The session lookup reads the database; keep that off the event loop.
        user = await run_in_threadpool(auth.session_user, request)
        return pages.error_page(request, user, 403, exc.message)
