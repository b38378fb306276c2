"""executemany straight through the driver, for the ingest hot path.

SQLAlchemy compiles parameters row by row (type processors, key lookups), which at alert
storm rates costs more than the database itself. These inserts pre-adapt each value once and
hand the driver one statement and a list of tuples. Values are stored exactly as SQLAlchemy
would store them, so ORM and Core reads see no difference.

The statements go to the DBAPI cursor of the session's connection (same transaction), not
through Connection.exec_driver_sql: its execution context costs ~0.1 ms a statement, a good
part of a small batch. Driver errors are raised as SQLAlchemy's, as exec_driver_sql would
(callers retry on sqlalchemy.exc.IntegrityError).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tocsin.storage.tables import UTCDateTime

Adapter = Callable[[Any], Any]


@lru_cache(maxsize=4096)
def _sqlite_time(value: datetime | None) -> str | None:
    # Cached: a batch writes the same few instants (its `now`) into many rows.
    if value is None:
        return None
    # SQLAlchemy's SQLite DateTime format: always with microseconds, so text compares in order.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def encode_json(value: Any) -> str | None:
    """Encode a JSON column's value as insert_rows stores it (for `encoded` columns)."""
    if value is None:
        return None
    try:
        # orjson is ~5x faster than json, which matters at storm rates.
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits, which orjson refuses; the standard library writes them.
        return json.dumps(value)


def _same(value: Any) -> Any:
    return value


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


@lru_cache(maxsize=64)
def _plan(
    table: Table, columns: tuple[str, ...], dialect: str, encoded: frozenset[str]
) -> tuple[str, list[tuple[int, Adapter]]]:
    postgres = dialect == "postgresql"
    mark = "%s" if postgres else "?"
    placeholders: list[str] = []
    adapters: list[Adapter] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, UTCDateTime):
            adapters.append(_pg_time if postgres else _sqlite_time)
            placeholders.append(mark)
        elif isinstance(kind, JSON):
            adapters.append(_same if name in encoded else encode_json)
            placeholders.append(f"{mark}::json" if postgres else mark)
        elif isinstance(kind, Boolean):
            adapters.append(_same if postgres else _flag)
            placeholders.append(mark)
        else:
            adapters.append(_same)
            placeholders.append(mark)
    names = ", ".join(f'"{name}"' for name in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join(placeholders)})'  # noqa: S608 - names come from the table definition
    # Only the columns whose values need adapting are touched per row.
    return sql, [(i, fn) for i, fn in enumerate(adapters) if fn is not _same]


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    encoded: frozenset[str] = frozenset(),
) -> None:
    """Insert rows (all with the same keys, every value set) with one driver executemany.

    The JSON columns named in `encoded` hold text from encode_json already.
    """
    if not rows:
        return
    columns = tuple(name for name in rows[0] if name in table.c)
    dialect = session.get_bind().dialect.name
    sql, adapters = _plan(table, columns, dialect, encoded)
    values = itemgetter(*columns)
    params = []
    for row in rows:
        fields = list(values(row)) if len(columns) > 1 else [values(row)]
        for index, adapt in adapters:
            fields[index] = adapt(fields[index])
        params.append(tuple(fields))
    if dialect == "postgresql":
        # COPY: psycopg formats the rows in C; executemany pipelines one statement per row
        # through Python generators, which cost more than the rows.
        names = ", ".join(f'"{name}"' for name in columns)
        _copy(session, f'COPY "{table.name}" ({names}) FROM STDIN', params)
        return
    _driver(session, sql, params, many=True)


def max_id(session: Session, table: Table) -> int:
    """Return the largest id in `table` (0 when empty), cheaply."""
    sql = f'SELECT max(id) FROM "{table.name}"'  # noqa: S608 - a table name
    return int(_driver(session, sql, (), many=False)[0][0] or 0)


@contextmanager
def _cursor(session: Session, sql: str) -> Iterator[Any]:
    """A DBAPI cursor on the session's connection (same transaction); driver errors about
    `sql` are raised as SQLAlchemy's, as Connection.exec_driver_sql would."""
    connection = session.connection()
    dialect = connection.dialect
    cursor = connection.connection.cursor()
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        cursor.close()


def _copy(session: Session, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY rows into a PostgreSQL table."""
    with _cursor(session, sql) as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _driver(session: Session, sql: str, params: Any, *, many: bool) -> Any:
    """Run `sql`: executemany, or execute and return all rows."""
    with _cursor(session, sql) as cursor:
        if many:
            cursor.executemany(sql, params)
            return None
        cursor.execute(sql, params)
        return cursor.fetchall()


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """Reserve `count` primary keys of `table` in this transaction.

    INSERT … RETURNING in parameter order makes SQLAlchemy fall back to one statement per
    row on SQLite; with the ids known beforehand a plain executemany does the whole batch.
    SQLite has one writer (this transaction holds the write lock), so max(id) + 1 onward is
    ours; PostgreSQL hands out sequence values, which never collide.
    """
    if count == 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        sql = (
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "  # noqa: S608 - a table name
            "FROM generate_series(1, %s)"
        )
        return [row[0] for row in _driver(session, sql, (count,), many=False)]
    first = max_id(session, table) + 1
    return list(range(first, first + count))


def insert_with_ids(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    encoded: frozenset[str] = frozenset(),
) -> list[int]:
    """Insert rows with executemany and return their ids, in order (set as each row's "id")."""
    ids = reserve_ids(session, table, len(rows))
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = row_id
    insert_rows(session, table, rows, encoded)
    return ids
