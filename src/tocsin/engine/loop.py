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
from typing import Protocol, cast

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.orm import Session

from tocsin.engine import coordination
from tocsin.engine.coordination import Busy
from tocsin.engine.waker import Waker
from tocsin.services import wakeup
from tocsin.storage.db import Database

log = logging.getLogger("tocsin.engine")
Clock = Callable[[], datetime]
MAX_SLEEP = 30.0
RETRY_AFTER = timedelta(seconds=5)
BUSY_RETRY = timedelta(seconds=0.5)


class Module(Protocol):
    """One job of the engine; update() returns when it next needs to run, or None."""

    name: str
    # Whether committed work (a wake signal) should run it at once, not only at its deadline.
    on_work: bool

    def update(self, session: Session, now: datetime) -> datetime | None: ...


class SelfManagedModule(Protocol):
    """A module that opens its own short transactions (e.g. to talk to the network between
    them); run() returns when it next needs to run, or None."""

    name: str
    on_work: bool
    own_transactions: bool

    def run(self, db: Database, now: datetime) -> datetime | None: ...


class Engine:
    """Runs modules in order, each in its own committed unit of work."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        modules: Sequence[Module | SelfManagedModule],
        *,
        waker: Waker | None = None,
        registry: CollectorRegistry | None = None,
        exclusive: coordination.SqliteEngineLock | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        # Names this instance in engine_modules.last_run_by (which instance ran what).
        self.owner = coordination.instance_name()
        self.exclusive = exclusive
        self.claims = coordination.ModuleClaims(self.owner)
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
        self.module_seconds = Histogram(
            "tocsin_engine_module_seconds",
            "How long one run of an engine module took (its transactions included).",
            ["module"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
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
        ran = False
        for module in self.modules:
            due = self._due.get(module.name, now)
            # A module that ran earlier in this cycle may have made work for the next ones
            # (a heartbeat raises an alert, a step creates pages): they run now too.
            if not (((woken or ran) and module.on_work) or due <= now):
                continue
            ran = True
            try:
                started = self.clock()
                begun = time.monotonic()
                if getattr(module, "own_transactions", False):
                    deadline = cast(SelfManagedModule, module).run(self.db, started)
                else:
                    deadline = self._run_in_transaction(cast(Module, module))
                self.module_seconds.labels(module.name).observe(time.monotonic() - begun)
                if deadline is not None and deadline <= started:
                    # Work it made due at once (a failed message hurrying its page on, messages
                    # queued for lifecycle events after the sender ran) is for the modules
                    # that run on work: run them now, not at their old deadlines; those later
                    # in the order still run in this cycle.
                    for other in self.modules:
                        if other.on_work:
                            self._due[other.name] = now
            except Busy as busy:
                # Another instance holds the module: try again soon, so that if it dies the
                # work carries on here within a cycle.
                log.debug("skipping %s: %s", module.name, busy)
                deadline = now + BUSY_RETRY
            except Exception:
                # One failing module must not stop the others; it is retried shortly.
                log.exception("engine module %s failed", module.name)
                self.failures.labels(module.name).inc()
                deadline = now + RETRY_AFTER
            # No deadline still means a run every MAX_SLEEP, which heals anything missed.
            self._due[module.name] = deadline or now + timedelta(seconds=MAX_SLEEP)
        self.cycles += 1
        return min(self._due.values(), default=None)

    def _run_in_transaction(self, module: Module) -> datetime | None:
        with self.db.write() as session:
            version = getattr(module, "version", None)
            if version is not None:
                self.claims.claim(session, module.name, version, self.clock())
            deadline = module.update(session, self.clock())
            session.commit()
        return deadline

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

    def acquire(self) -> None:
        """Take the one-engine lock of a SQLite database; raise EngineAlreadyRunning."""
        if self.exclusive is not None:
            self.exclusive.acquire()
            # Holding the lock, this is the only engine: claims on unsent messages belong to
            # a dead one, so they are freed now instead of waiting out their lease.
            with self.db.write() as session:
                released = coordination.release_claims(session)
                session.commit()
            if released:
                log.info("released %d messages claimed by an engine that stopped", released)

    def start(self) -> None:
        """Run the loop in a daemon thread (after taking the SQLite engine lock)."""
        self.acquire()
        self._thread = threading.Thread(target=self.run_forever, name="tocsin-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.waker.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        for module in self.modules:
            close = getattr(module, "close", None)
            if callable(close):
                close()
        if self.exclusive is not None:
            self.exclusive.release()


def listen_postgres(url: str, waker: Waker, stop: threading.Event) -> None:
    """Turn NOTIFY tocsin_engine from any process into a local wake-up (PostgreSQL only)."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("LISTEN tocsin_engine")
                while not stop.is_set():
                    for notice in conn.notifies(timeout=1.0, stop_after=1):
                        # This process's own writers woke this engine already.
                        if notice.payload != wakeup.origin():
                            waker.notify()
        except Exception:
            log.exception("LISTEN connection lost; reconnecting")
            time.sleep(1.0)


def watch_sqlite(database: str, waker: Waker, stop: threading.Event, every: float = 0.05) -> None:
    """Wake an engine running apart from the API when another connection commits (SQLite).

    SQLite has no NOTIFY. `PRAGMA data_version` on a connection of its own changes when any
    other connection commits a change (the API's writer, or this engine's own modules: such a
    wake runs one cycle that finds nothing and writes nothing, so it does not repeat). A
    read of it is a few microseconds; every 50 ms keeps the wake delay well under 100 ms.
    """
    import sqlite3

    while not stop.is_set():
        try:
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, check_same_thread=False)
            try:
                seen = conn.execute("PRAGMA data_version").fetchone()[0]
                while not stop.wait(every):
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version != seen:
                        seen = version
                        waker.notify()
            finally:
                conn.close()
        except sqlite3.Error:
            log.exception("watching %s for commits failed; retrying", database)
            stop.wait(1.0)
