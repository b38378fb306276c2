"""Shared fixtures: real SQLite and PostgreSQL databases, one per test worker.

Every test that takes `db_url` (or anything built on it) runs twice, once per backend.
PostgreSQL comes from TOCSIN_TEST_PG_URL (default: the machine's trust-auth server). When it
is unreachable the PostgreSQL half is skipped locally but FAILS under CI=true: CI must never
pass without having run against PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tocsin.services import catalog
from tocsin.storage.db import Database, upgrade
from tocsin.storage.tables import Base

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PG_ADMIN_URL = os.environ.get(
    "TOCSIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ADMIN_TOKEN = "test-admin-token-0123456789"
BACKENDS = ["sqlite", "postgresql"]


def _worker(request: pytest.FixtureRequest) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL database of this worker's own, dropped at the end."""
    admin = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg")
    # The pid keeps concurrent pytest runs on one machine from dropping each other's database.
    name = f"tocsin_test_{_worker(request)}_{os.getpid()}"
    try:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach PostgreSQL is reported below
        message = f"PostgreSQL at {admin.render_as_string()} is not usable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    url = admin.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


_TABLES = [t.name for t in reversed(Base.metadata.sorted_tables)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A clean, migrated database URL on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "tocsin.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    # PostgreSQL tests share one URL, so a catalog cached by the previous test must go.
    catalog.invalidate()
    url: str = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()


@dataclass
class FakeClock:
    """A clock tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC))


def apply_yaml(db: Database, text_: str) -> None:
    """Apply a configuration document and commit."""
    from tocsin.configfile import apply_config, load_config

    with db.write() as session:
        apply_config(session, load_config(text_))
        session.commit()


@pytest.fixture
def core_config(database: Database) -> Database:
    """The database with examples/core.yaml applied."""
    apply_yaml(database, (EXAMPLES / "core.yaml").read_text())
    return database


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., object]:
    from tocsin.config import Settings

    def _make(url: str, **kw: object) -> Settings:
        values: dict[str, object] = {
            "database_url": url,
            "admin_token": ADMIN_TOKEN,
            "secret_key": "test-secret-key",
            "data_dir": tmp_path / "data",
            # In a thread, as before: test_ingest_process covers the child process, and a
            # child per TestClient would cost every test half a second.
            "ingest_process": False,
        }
        values.update(kw)
        return Settings(**values)  # type: ignore[arg-type]

    return _make


@pytest.fixture
def api(
    core_config: Database, make_settings: Callable[..., object], clock: FakeClock
) -> Iterator[object]:
    """A TestClient on a core-configured database, authenticated with the admin token."""
    from fastapi.testclient import TestClient

    from tocsin.api.app import create_app

    settings = make_settings(core_config.url)
    app = create_app(settings, core_config, clock)  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


@pytest.fixture
def alerting_api(api: object, core_config: Database) -> object:
    """The API client with examples/alerting.yaml applied over the core example."""
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    return api
