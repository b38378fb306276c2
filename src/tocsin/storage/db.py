"""The database handle: engine set-up per backend, units of work, migrations."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from tocsin.storage.writer import GroupCommitWriter

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or omits)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine and its session factories.

    Writes and reads are separate on SQLite: a write transaction starts with BEGIN IMMEDIATE so
    two writers queue on the database lock at the start instead of one failing halfway with
    "database is locked"; reads use a deferred BEGIN and never wait for writers (WAL).
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 20
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 20
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)
        writer_bind = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self._writer = sessionmaker(bind=writer_bind, expire_on_commit=False)
        # SQLite allows one writer; queueing writers here, in the process, keeps them out of
        # SQLite's busy handler, which sleeps up to 100 ms between retries.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        # And between processes (serve's ingest writer, a separate engine): a kernel lock
        # wakes its waiter when it is released, where the busy handler's sleeps let a busy
        # process take the database again and again while another starves.
        self._file_lock = (
            _FileLock(Path(f"{parsed.database}.write.lock"))
            if self.is_sqlite and parsed.database not in (None, "", ":memory:")
            else None
        )
        # Every write goes through group commit on SQLite. On PostgreSQL only batchable work
        # (declarations) does: those lock nothing but the day's slug counter, so batching them
        # cannot deadlock, while other writes keep their own concurrent transactions.
        self._batcher = GroupCommitWriter(self)
        self._group: GroupCommitWriter | None = self._batcher if self.is_sqlite else None
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="tocsin-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database every second, off the commit path.

        SQLite otherwise checkpoints inside the COMMIT that fills the WAL, and with
        synchronous=FULL that costs the unlucky write several fsyncs. PASSIVE never blocks
        readers or the writer; it copies what it can and the next run does the rest.
        """
        while not self._stop.wait(CHECKPOINT_SECONDS):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:
                log.warning("WAL checkpoint failed", exc_info=True)

    def writer_stats(self) -> tuple[int, int]:
        """Return (batches committed, jobs committed) by the group-commit writer."""
        return self._batcher.batches, self._batcher.jobs_done

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Open a unit of work for writing; the caller commits, anything else rolls back."""
        lock, file_lock = self._write_lock, self._file_lock
        if lock is not None:
            lock.acquire()
        if file_lock is not None:
            file_lock.acquire()
        try:
            session = self._writer()
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        finally:
            if file_lock is not None:
                file_lock.release()
            if lock is not None:
                lock.release()

    async def run_write(self, job: Callable[[Session], T]) -> T:
        """Run `job(session)` in a committed unit of work and return its result.

        On SQLite jobs go through the group-commit writer; on PostgreSQL, where writers run
        concurrently under row locks, each job gets its own transaction on a worker thread.
        """
        if self._group is not None:
            return await self._group.submit(job)
        return await anyio.to_thread.run_sync(self._run_alone, job)

    async def run_write_batched(
        self, kind: str, item: Any, batch_fn: Callable[[Session, Sequence[Any]], Sequence[Any]]
    ) -> Any:
        """Run `item` through `batch_fn` with other items of `kind` queued meanwhile.

        batch_fn returns one result or exception per item; an exception is raised here.
        """
        return await self._batcher.submit_batched(kind, item, batch_fn)

    def _run_alone(self, job: Callable[[Session], T]) -> T:
        with self.write() as session:
            result = job(session)
            session.commit()
        return result

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Open a read-only unit of work."""
        session = self._reader()
        try:
            yield session
            # End a read with COMMIT, not the ROLLBACK that close() sends: psycopg forgets
            # every prepared statement of the connection on ROLLBACK (and sends DEALLOCATE
            # ALL), so each read made the engine's next statements be parsed and planned
            # afresh. A COMMIT of a transaction that wrote nothing costs no WAL flush. Objects
            # changed in a read session are never written: those reads still roll back.
            if not (session.new or session.dirty or session.deleted):
                session.commit()
        finally:
            # close() ends the transaction without expiring loaded rows (rollback() would),
            # so callers may keep using what they read.
            session.close()

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self._stop.set()
        self._batcher.close()
        self.engine.dispose()
        if self._file_lock is not None:
            self._file_lock.close()


class _FileLock:
    """An exclusive flock on a file beside the database, taken around each write transaction.

    Callers hold the Database's thread lock first: flock locks belong to the open file, so two
    threads of one process would not exclude each other with it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


log = logging.getLogger("tocsin.db")
AUTOCHECKPOINT_PAGES = 20_000
CHECKPOINT_SECONDS = 1.0


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE is possible (SQLAlchemy's
        # documented recipe for serialisable SQLite transactions).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the 2xx goes out, even across power loss.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Alert tables have random-keyed indexes (dedup keys): with SQLite's default 2 MB page
        # cache every batch re-reads their pages. 64 MB of cache and memory-mapped reads keep
        # the working set in memory as tables grow.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA mmap_size=268435456")
        # Checkpoints run in the background (Database._checkpoint_loop), not inside the commit
        # of whichever write crosses the threshold; this high mark is only a safety net.
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision`."""
    from alembic import command

    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # A fresh data directory: SQLite creates the file but not its folder.
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_migrated(engine: Engine) -> bool:
    """Return True when the database is at the newest migration."""
    return current_revision(engine) == head_revision()
