"""Build the ASGI application: routers, middleware, error handlers, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tocsin import __version__
from tocsin.api import admin, compat, errors, incidents, ops
from tocsin.api.context import AppContext, Clock, utc_now
from tocsin.api.middleware import GuardAndMeasure
from tocsin.config import Settings
from tocsin.storage.db import Database
from tocsin.web import views as web


def create_app(settings: Settings, db: Database | None = None, clock: Clock = utc_now) -> FastAPI:
    """Return the Tocsin web application for `settings` (the database must be migrated)."""
    database = db or Database(settings.resolved_database_url())
    ctx = AppContext.build(settings, database, clock)
    app = FastAPI(
        lifespan=_lifespan,
        title="Tocsin",
        version=__version__,
        description=(
            "Self-hosted incident response. Authenticate with `Authorization: Bearer <token>`."
        ),
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    registry = CollectorRegistry()
    registry.register(ops.OpenIncidents(ctx))
    app.state.registry = registry
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(incidents.router)
    app.include_router(admin.router)
    app.include_router(compat.router)
    web.install(app)
    app.add_middleware(GuardAndMeasure, max_body=settings.max_body_bytes, registry=registry)
    return app


# Sync handlers run on a thread pool; 40 threads (the default) on 2 cores mostly fight over the
# GIL and triple the CPU per request under load. A few suffice: the database is the bottleneck.
WORKER_THREADS = 2


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    yield
