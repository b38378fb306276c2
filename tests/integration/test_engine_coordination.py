"""How engine instances share modules: a module runs in one instance at a time (PostgreSQL,
advisory lock), never in an older version than one already seen, and SQLite refuses a
second engine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tocsin.engine.coordination import (
    Busy,
    EngineAlreadyRunning,
    ModuleClaims,
    SqliteEngineLock,
)
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import EngineModuleRow

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)


def test_an_older_version_steps_aside_and_a_newer_one_takes_over(database: Database) -> None:
    new, old = ModuleClaims("new:1"), ModuleClaims("old:2")
    with database.write() as session:
        new.claim(session, "escalations", 2, NOW)
        session.commit()
    with database.write() as session, pytest.raises(Busy, match="version 2 elsewhere"):
        old.claim(session, "escalations", 1, NOW)
    with database.read() as session:
        row = session.get(EngineModuleRow, "escalations")
        assert row is not None
        assert (row.version, row.last_run_by) == (2, "new:1")


def test_a_module_runs_in_one_instance_at_a_time(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite runs one engine (file lock), so module locks are not needed")
    first, second = ModuleClaims("a:1"), ModuleClaims("b:2")
    with database.write() as session:  # the row exists after any first run
        first.claim(session, "escalations", 1, NOW)
        session.commit()
    with database.write() as holding:
        first.claim(holding, "escalations", 1, NOW)
        with database.write() as other, pytest.raises(Busy, match="another instance"):
            second.claim(other, "escalations", 1, NOW)
        holding.commit()
    # Released at commit (or when a killed instance's connection goes): the other runs it.
    with database.write() as other:
        second.claim(other, "escalations", 1, NOW)
        other.commit()


def test_sqlite_allows_one_engine_and_a_killed_one_frees_the_lock(tmp_path: Path) -> None:
    database = str(tmp_path / "tocsin.db")
    first, second = SqliteEngineLock(database), SqliteEngineLock(database)
    first.acquire()
    with pytest.raises(EngineAlreadyRunning, match="SQLite allows one engine"):
        second.acquire()
    first.release()  # what the kernel does when the process dies
    second.acquire()
    second.release()
