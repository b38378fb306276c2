"""The child process of `tocsin serve`: it writes ingested alerts and, on SQLite, runs the engine.

On SQLite the engine lives here, beside the ingest writer, rather than in the API process: the
two then queue for the database on one in-process lock, and the engine's transactions are not
slowed by request handling holding the interpreter lock. A batch that gives the engine work
wakes it at commit (its lifecycle events); the server sends a wake frame when it commits other
work (an acknowledgement, a declaration). The server's /metrics includes this process's engine
metrics. (On PostgreSQL the engine stays in the API process: see create_app.)
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from tocsin.api.app import engine_apart
from tocsin.api.context import AppContext
from tocsin.engine.coordination import EngineAlreadyRunning
from tocsin.engine.loop import Engine
from tocsin.services.ingest_process import ChildHooks, child_main
from tocsin.storage.db import Database

log = logging.getLogger("tocsin.ingest_child")


class _EngineBeside:
    """The engine, run in a thread of the child."""

    def __init__(self, engine: Engine, ctx: AppContext, registry: CollectorRegistry) -> None:
        self.engine = engine
        self.ctx = ctx
        self.registry = registry

    def committed(self) -> None:
        self.ctx.wake()

    def metrics(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self.engine.stop()


def _with_engine(db: Database, hello: dict[str, Any]) -> ChildHooks | None:
    settings = hello.get("settings")
    if settings is None or not hello.get("engine"):
        return None
    engine, ctx, registry = engine_apart(settings, db)
    try:
        engine.start()
    except EngineAlreadyRunning as exc:
        # Said plainly, as `tocsin serve` does: the writer still runs, without an engine.
        log.error("%s", exc)
        return None
    return _EngineBeside(engine, ctx, registry)


if __name__ == "__main__":
    child_main(int(sys.argv[1]), _with_engine)
