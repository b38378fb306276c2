"""The migrations build exactly the schema the models describe, on both databases.

An index declared on a model but missing from a migration (or the reverse) would make a
query plan depend on how the database was created; this catches it."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from tocsin.storage.tables import Base


def _index_or_table_diffs(diffs: list[object]) -> list[object]:
    """Keep the differences that matter (tables, columns, indexes), not type spellings."""
    kept: list[object] = []
    for diff in diffs:
        entries = diff if isinstance(diff, list) else [diff]
        for entry in entries:
            kind = entry[0] if isinstance(entry, tuple) else None
            if kind in {"add_table", "remove_table", "add_column", "remove_column",
                        "add_index", "remove_index"}:  # fmt: skip
                kept.append(entry)
    return kept


def test_migrations_match_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    # alembic_version is Alembic's own table, not a model.
    found = [d for d in _index_or_table_diffs(diffs) if "alembic_version" not in repr(d)]
    assert found == []
