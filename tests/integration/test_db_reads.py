"""Read units of work: they end without writing, and (on PostgreSQL) without throwing away
the statements psycopg prepared on the connection."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from tocsin.storage.db import Database
from tocsin.storage.tables import ServiceRow


def test_a_read_keeps_the_connections_prepared_statements(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("prepared statements are psycopg's (PostgreSQL)")
    # psycopg prepares a statement on its fifth execution; one thread, so one connection.
    for _ in range(6):
        with database.read() as session:
            session.execute(text("SELECT count(*) FROM services")).scalar()
    with database.read() as session:
        prepared = session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar()
    # A ROLLBACK at the end of each read would have sent DEALLOCATE ALL.
    assert prepared


def test_objects_changed_in_a_read_are_not_written(database: Database) -> None:
    with database.write() as session:
        session.add(ServiceRow(id="checkout", name="Checkout"))
        session.commit()
    with database.read() as session:
        row = session.scalars(select(ServiceRow).where(ServiceRow.id == "checkout")).one()
        row.name = "Renamed in a read"
    with database.read() as session:
        assert session.scalars(select(ServiceRow.name)).one() == "Checkout"
