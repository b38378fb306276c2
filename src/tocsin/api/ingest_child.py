"""The child process of `tocsin serve`: it writes ingested alerts and runs the engine.

The engine lives here, beside the ingest writer, rather than in the API process: on SQLite the
two then queue for the database on one in-process lock and the engine's transactions are not
slowed by request handling holding the interpreter lock; the API process keeps its core for
HTTP. The writer wakes the engine after each batch it commits; the server sends a wake frame
when it commits other work (an acknowledgement, a declaration); on PostgreSQL NOTIFY from any
other process wakes it too. The server's /metrics includes this process's engine metrics.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from tocsin.api.app import build_engine
from tocsin.api.context import AppContext
from tocsin.engine.coordination import EngineAlreadyRunning
from tocsin.engine.loop import Engine, listen_postgres
from tocsin.services.ingest_process import ChildHooks, child_main
from tocsin.storage.db import Database

log = logging.getLogger("tocsin.ingest_child")


class _EngineBeside:
    """The engine, run in a thread of the child."""

    def __init__(self, engine: Engine, ctx: AppContext, registry: CollectorRegistry) -> None:
        self.engine = engine
        self.ctx = ctx
        self.registry = registry
        self._stop = threading.Event()
        url = engine.db.engine.url
        if url.get_backend_name() == "postgresql":
            threading.Thread(
                target=listen_postgres,
                args=(url.render_as_string(hide_password=False), engine.waker, self._stop),
                name="tocsin-listen",
                daemon=True,
            ).start()

    def committed(self) -> None:
        self.ctx.wake()

    def metrics(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self._stop.set()
        self.engine.stop()


def _with_engine(db: Database, hello: dict[str, Any]) -> ChildHooks | None:
    settings = hello.get("settings")
    if settings is None or not hello.get("engine"):
        return None
    ctx = AppContext.build(settings, db)
    registry = CollectorRegistry()
    engine = build_engine(ctx, registry)
    try:
        engine.start()
    except EngineAlreadyRunning as exc:
        # Said plainly, as `tocsin serve` does: the writer still runs, without an engine.
        log.error("%s", exc)
        return None
    return _EngineBeside(engine, ctx, registry)


if __name__ == "__main__":
    child_main(int(sys.argv[1]), _with_engine)
