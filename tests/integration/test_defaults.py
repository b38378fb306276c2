"""A never-configured database starts with the P0–P4 scheme; a configured one never does."""

from __future__ import annotations

from tests.conftest import EXAMPLES, apply_yaml
from tocsin.configfile.defaults import apply_defaults_if_unconfigured
from tocsin.services import catalog
from tocsin.storage.db import Database


def _names(db: Database) -> list[str]:
    catalog.invalidate()
    with db.read() as session:
        return [s.name for s in catalog.severities(session)]


def test_fresh_database_gets_the_default_scheme(database: Database) -> None:
    with database.write() as session:
        assert apply_defaults_if_unconfigured(session) is not None
        session.commit()
    assert _names(database) == ["P0", "P1", "P2", "P3", "P4"]
    with database.write() as session:
        assert apply_defaults_if_unconfigured(session) is None


def test_configured_database_keeps_its_own_scheme(database: Database) -> None:
    apply_yaml(database, (EXAMPLES / "seeds" / "004_screenshot_service.yaml").read_text())
    with database.write() as session:
        assert apply_defaults_if_unconfigured(session) is None
    assert _names(database) == ["SEV1", "SEV2", "SEV3", "SEV4"]
