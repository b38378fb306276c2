"""Build the ASGI application: routers, middleware, error handlers, metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tocsin import __version__
from tocsin.api import admin, alerts, compat, errors, incidents, ingest, oncall, ops
from tocsin.api import communications as communication_api
from tocsin.api import slack as slack_interactions
from tocsin.api.context import AppContext, Clock, utc_now
from tocsin.api.links import link_settings, public_base_url
from tocsin.api.middleware import GuardAndMeasure
from tocsin.config import Settings
from tocsin.core.durations import parse_duration
from tocsin.engine.cadence import CadenceModule
from tocsin.engine.coordination import EngineAlreadyRunning, SqliteEngineLock, instance_name
from tocsin.engine.lifecycle_module import LifecycleModule
from tocsin.engine.loop import Engine, Module, SelfManagedModule, listen_postgres
from tocsin.engine.modules import (
    HeartbeatModule,
    PayloadRetentionModule,
    TableStatisticsModule,
)
from tocsin.engine.oncall import EscalationModule, NotificationRuleModule
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.engine.schedule_module import ScheduleModule
from tocsin.notify.registry import ChannelRegistry
from tocsin.services import catalog, comm_notices, lifecycle
from tocsin.services.ingest_process import IngestProcess
from tocsin.services.outgoing_webhooks import WebhookReactor
from tocsin.storage.db import Database
from tocsin.web import communications as communication_web
from tocsin.web import views as web


def create_app(
    settings: Settings,
    db: Database | None = None,
    clock: Clock = utc_now,
    *,
    run_engine: bool = False,
) -> FastAPI:
    """Return the Tocsin web application for `settings` (the database must be migrated).

    With run_engine the engine loop runs beside the server (`tocsin serve`): on SQLite with
    settings.ingest_process in the ingest writer process, else in a thread of this one.
    """
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
    engine_beside_writer = False
    if settings.ingest_process:
        # On SQLite the engine runs in the ingest process, where it and the writer queue for
        # the database on one in-process lock (across processes, the fair lock let engine
        # transactions slowed by request handling hold up the writer). On PostgreSQL writers
        # do not queue: the engine stays here, off the writer's core (measured both ways,
        # BENCHMARKS.md, issue 3).
        engine_beside_writer = run_engine and database.is_sqlite
        ctx.ingest = IngestProcess(
            database.url,
            generation=catalog.generation,
            child="tocsin.api.ingest_child",
            options={"settings": settings, "engine": engine_beside_writer},
        )
        if engine_beside_writer:
            lifecycle.wake_on_commit(ctx.ingest)
    registry = CollectorRegistry()
    registry.register(ops.OpenIncidents(ctx))
    registry.register(ops.WriterStats(ctx))
    app.state.registry = registry
    in_process = run_engine and not engine_beside_writer
    app.state.engine = build_engine(ctx, registry) if in_process else None
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(incidents.router)
    app.include_router(admin.router)
    app.include_router(compat.router)
    app.include_router(ingest.router)
    app.include_router(alerts.router)
    app.include_router(oncall.router)
    app.include_router(communication_api.router)
    app.include_router(slack_interactions.router)
    app.include_router(communication_web.router)  # the incident page's update form
    web.install(app)
    app.add_middleware(GuardAndMeasure, max_body=settings.max_body_bytes, registry=registry)
    return app


# Sync handlers run on a thread pool; 40 threads (the default) on 2 cores mostly fight over the
# GIL and triple the CPU per request under load. A few suffice: the database is the bottleneck.
WORKER_THREADS = 2


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    engine: Engine | None = app.state.engine
    stop = threading.Event()
    if engine is not None:
        try:
            engine.start()
        except EngineAlreadyRunning as exc:
            # Said plainly, without a traceback: it is a set-up mistake, not a bug.
            logging.getLogger("tocsin").error("%s", exc)
            raise SystemExit(1) from None
        url = engine.db.engine.url
        if url.get_backend_name() == "postgresql":
            threading.Thread(
                target=listen_postgres,
                args=(url.render_as_string(hide_password=False), engine.waker, stop),
                name="tocsin-listen",
                daemon=True,
            ).start()
    ingest_writer = app.state.ctx.ingest
    if ingest_writer is not None:
        await ingest_writer.start()
    try:
        yield
    finally:
        stop.set()
        if ingest_writer is not None:
            await ingest_writer.close()
        if engine is not None:
            engine.stop()


def engine_apart(settings: Settings, db: Database) -> tuple[Engine, AppContext, CollectorRegistry]:
    """The engine for a process without the API (`tocsin engine`, the ingest child), with the
    context whose waker wakes it and the registry holding its metrics."""
    ctx = AppContext.build(settings, db)
    registry = CollectorRegistry()
    return build_engine(ctx, registry), ctx, registry


def build_engine(ctx: AppContext, registry: CollectorRegistry | None) -> Engine:
    """Return the engine with the modules of this release, sharing the API's wake signal."""
    retention = parse_duration(ctx.settings.payload_retention)
    database = ctx.db.engine.url.database
    exclusive = (
        SqliteEngineLock(database)
        if ctx.db.is_sqlite and database not in (None, "", ":memory:")
        else None
    )
    # Order matters within a cycle: a heartbeat raises an alert, its escalation fires a step,
    # the step's pages queue messages, the sender sends them: one wake-up, one pass.
    base_url = public_base_url(ctx.settings)
    modules: list[Module | SelfManagedModule] = [
        HeartbeatModule(),
        ScheduleModule(),
        EscalationModule(),
        NotificationRuleModule(link_settings(ctx.settings)),
        CadenceModule(base_url),
        OutboxSender(ChannelRegistry(), owner=instance_name(), clock=ctx.clock),
        # Lifecycle events become outgoing webhooks and stakeholder notices after the sender
        # has sent the cycle's pages (a page never waits behind a burst of events); the
        # messages queued here are sent by the cycle that follows at once.
        LifecycleModule([WebhookReactor(base_url), comm_notices.reactor(base_url)]),
        PayloadRetentionModule(retention),
    ]
    if not ctx.db.is_sqlite:
        modules.append(TableStatisticsModule())
    # A commit that emitted lifecycle events wakes this engine (in-process, on SQLite too).
    lifecycle.wake_on_commit(ctx.waker)
    return Engine(
        ctx.db, ctx.clock, modules, waker=ctx.waker, registry=registry, exclusive=exclusive
    )
