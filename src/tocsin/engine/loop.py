"""The engine loop: run every module, then sleep until the next deadline or new work.

Each module's update(session, now) is idempotent and keeps its state in the database, so a
crash loses nothing and a restart simply runs it again. The loop never polls on a fixed
short timer: the API wakes it after committing work, and otherwise it sleeps until the
earliest deadline a module reported (capped, so clock jumps and missed signals heal).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.orm import Session

from tocsin.engine.waker import Waker
from tocsin.storage.db import Database

log = logging.getLogger("tocsin.engine")
Clock = Callable[[], datetime]
MAX_SLEEP = 30.0
RETRY_AFTER = timedelta(seconds=5)


class Module(Protocol):
    """One job of the engine; update() returns when it next needs to run, or None."""

    name: str
    # Whether committed work (a wake signal) should run it at once, not only at its deadline.
    on_work: bool

    def update(self, session: Session, now: datetime) -> datetime | None: ...


class Engine:
    """Runs modules in order, each in its own committed unit of work."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        modules: Sequence[Module],
        *,
        waker: Waker | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.modules = list(modules)
        self.waker = waker or Waker()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cycles = 0
        self._due: dict[str, datetime] = {}
        self.wake_delay = Histogram(
            "tocsin_engine_wake_delay_seconds",
            "From work committed (wake signal) to the engine cycle starting.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.failures = Counter(
            "tocsin_engine_module_failures",
            "Engine module runs that raised.",
            ["module"],
            registry=registry,
        )

    def run_once(self, *, woken: bool = True) -> datetime | None:
        """Run the modules that are due (or woken); return the earliest next deadline."""
        now = self.clock()
        for module in self.modules:
            due = self._due.get(module.name, now)
            if not ((woken and module.on_work) or due <= now):
                continue
            try:
                with self.db.write() as session:
                    deadline = module.update(session, self.clock())
                    session.commit()
            except Exception:
                # One failing module must not stop the others; it is retried shortly.
                log.exception("engine module %s failed", module.name)
                self.failures.labels(module.name).inc()
                deadline = now + RETRY_AFTER
            # No deadline still means a run every MAX_SLEEP, which heals anything missed.
            self._due[module.name] = deadline or now + timedelta(seconds=MAX_SLEEP)
        self.cycles += 1
        return min(self._due.values(), default=None)

    def run_forever(self) -> None:
        """Loop until stop() is called."""
        woken = True
        while not self._stop.is_set():
            deadline = self.run_once(woken=woken)
            timeout = MAX_SLEEP
            if deadline is not None:
                timeout = max(0.0, min(MAX_SLEEP, (deadline - self.clock()).total_seconds()))
            waited = self.waker.wait(timeout)
            woken = waited is not None
            if waited is not None:
                self.wake_delay.observe(waited)

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run_forever, name="tocsin-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.waker.notify()
        if self._thread is not None:
            self._thread.join(timeout)


def listen_postgres(url: str, waker: Waker, stop: threading.Event) -> None:
    """Turn NOTIFY tocsin_engine from any process into a local wake-up (PostgreSQL only)."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("LISTEN tocsin_engine")
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        waker.notify()
        except Exception:
            log.exception("LISTEN connection lost; reconnecting")
            time.sleep(1.0)
