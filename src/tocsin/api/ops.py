"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tocsin.api.context import AppContext
from tocsin.api.deps import Ctx
from tocsin.services import catalog, queries
from tocsin.storage.db import is_migrated

router = APIRouter(tags=["operations"])
log = logging.getLogger("tocsin.ops")


@router.get("/healthz", summary="Alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable and migrated")
def readyz(ctx: Ctx) -> JSONResponse:
    try:
        ctx.db.ping()
        migrated = is_migrated(ctx.db.engine)
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        log.warning("readiness check failed: %s", exc)
        return JSONResponse(status_code=503, content={"status": "database unreachable"})
    if not migrated:
        return JSONResponse(status_code=503, content={"status": "database not migrated"})
    return JSONResponse(content={"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, ctx: Ctx) -> Response:
    registry: CollectorRegistry = request.app.state.registry
    # OpenIncidents reads the database: off the event loop.
    text = await anyio.to_thread.run_sync(generate_latest, registry)
    if ctx.ingest is not None:
        # The engine's figures, when it runs in the ingest process.
        text += await ctx.ingest.metrics()
    return Response(text, media_type=CONTENT_TYPE_LATEST)


class WriterStats(Collector):
    """How much the batching writer groups: jobs per batch is the group-commit payoff."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[CounterMetricFamily]:
        batches, jobs = self.ctx.db.writer_stats()
        yield CounterMetricFamily(
            "tocsin_writer_batches", "Transactions committed by the batching writer.", batches
        )
        yield CounterMetricFamily(
            "tocsin_writer_jobs", "Units of work committed by the batching writer.", jobs
        )
        ingest = self.ctx.ingest
        if ingest is not None:
            yield CounterMetricFamily(
                "tocsin_ingest_process_batches",
                "Transactions committed by the ingest writer process.",
                ingest.batches,
            )
            yield CounterMetricFamily(
                "tocsin_ingest_process_deliveries",
                "Ingest requests committed by the ingest writer process.",
                ingest.items_done,
            )


class OpenIncidents(Collector):
    """Open incidents by severity, read from the database at scrape time."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tocsin_open_incidents", "Open incidents by severity.", labels=["severity"]
        )
        try:
            with self.ctx.db.read() as session:
                counts = queries.open_counts_by_severity(session)
                for level in catalog.severities(session):
                    counts.setdefault(level.name, 0)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the DB is down
            log.warning("could not count open incidents: %s", exc)
            counts = {}
        for severity, count in sorted(counts.items()):
            family.add_metric([severity], count)
        yield family
