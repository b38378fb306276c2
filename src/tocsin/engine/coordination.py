"""How engine instances share modules through the database alone.

Each module has a row in engine_modules. Running a module first takes its lock: on PostgreSQL
a transaction-scoped advisory lock tried without waiting, so while one instance runs a module
the others skip it at once instead of queueing behind it, and a killed instance's lock goes
with its connection. The row carries the module's code version: an instance never runs a
module whose stored version is newer than its own (during a rolling upgrade the new code
takes over, the old code steps aside), and an instance with newer code raises the stored
version. Two instances running one module at once would still be safe (due rows are taken
with SKIP LOCKED, messages under a lease): the lock saves the duplicated work.

SQLite needs no lock here: one engine per database file is enforced by an OS file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tocsin.services import wakeup
from tocsin.storage.oncall_tables import EngineModuleRow, OutboxRow

log = logging.getLogger("tocsin.engine")


def instance_name() -> str:
    """Return this process's name in engine_modules and outbox claims (host:pid)."""
    return wakeup.origin()


class Busy(Exception):
    """Another instance is running this module right now, or runs a newer version of it."""


_TRY_LOCK = text(
    "SELECT pg_try_advisory_xact_lock(:key), "
    "(SELECT version FROM engine_modules WHERE name = :name)"
)


def module_lock_key(name: str) -> int:
    """Return the advisory lock key of module `name` (stable across processes and releases)."""
    digest = hashlib.sha256(f"tocsin.engine-module:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ModuleClaims:
    """Claims modules for one engine instance, with as few statements as the hot path allows:
    the row is created once per process, the lock is one SELECT, and the row's bookkeeping
    (version raised, last run) is written when it changes or every RECORD_EVERY."""

    RECORD_EVERY = timedelta(seconds=10)

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._created: set[str] = set()
        self._recorded: dict[str, tuple[int, datetime]] = {}

    def claim(self, session: Session, name: str, version: int, now: datetime) -> None:
        """Lock module `name` for this transaction; raise Busy if this instance must skip it."""
        is_pg = session.get_bind().dialect.name == "postgresql"
        if name not in self._created:
            dialect = postgresql if is_pg else sqlite
            session.execute(
                dialect.insert(EngineModuleRow)
                .values(name=name, version=version)
                .on_conflict_do_nothing(index_elements=["name"])
            )
        if is_pg:
            # A transaction-scoped advisory lock, not FOR UPDATE NOWAIT on the row: locking a
            # row gives the transaction an id, and every commit of one waits for a WAL flush
            # — four modules a cycle, ten cycles a second, most of them finding no work.
            locked, stored = session.execute(
                _TRY_LOCK, {"key": module_lock_key(name), "name": name}
            ).one()
            if not locked:
                raise Busy(f"{name} is running in another instance")
        else:
            stored = session.scalar(
                select(EngineModuleRow.version).where(EngineModuleRow.name == name)
            )
        self._created.add(name)
        if stored is not None and stored > version:
            raise Busy(f"{name} runs version {stored} elsewhere; this instance has {version}")
        last = self._recorded.get(name)
        if stored != version or last is None or now - last[1] >= self.RECORD_EVERY:
            session.execute(
                update(EngineModuleRow)
                .where(EngineModuleRow.name == name)
                .values(version=version, last_run_at=now, last_run_by=self.owner)
            )
            self._recorded[name] = (version, now)


def release_claims(session: Session) -> int:
    """Free every claimed, unsent message (only when no other sender can be running)."""
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.status == "pending", OutboxRow.claimed_until.is_not(None))
        .values(claimed_until=None, claimed_by=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


class EngineAlreadyRunning(RuntimeError):
    """A second engine was started on a SQLite database."""


class SqliteEngineLock:
    """An exclusive OS lock beside the SQLite file: one engine per database, and a kill -9
    frees it (the kernel drops the lock with the process)."""

    def __init__(self, database: str) -> None:
        self.path = Path(f"{database}.engine.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise EngineAlreadyRunning(
                f"another Tocsin engine (pid {holder}) is already running on the SQLite "
                f"database {self.path.with_suffix('').with_suffix('')}; SQLite allows one "
                "engine. Stop it, run this process with TOCSIN_ENGINE=false, or use "
                "PostgreSQL to run several."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
