"""The ingest's bulk writes through the driver (executemany on SQLite, COPY on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tocsin.core.alerts import Action, AlertStatus, Signal
from tocsin.services.ingest_prepare import ENCODED_COLUMNS, content, encoded_content
from tocsin.services.ingest_rows import ALERTS, GROUPS, PAYLOADS, alert_row
from tocsin.storage.bulk import insert_rows, insert_with_ids
from tocsin.storage.db import Database
from tocsin.storage.tables import AlertPayloadRow, AlertRow

AWKWARD = [
    "tab\there, newline\nthere, carriage\rreturn",
    "back\\slash \\N \\. and a lone \\",
    'quotes "double" and \'single\', {"json": [1, "x"]}',
    "ünïcødé ✓ 😀 中文",
    "",
    None,
]


def test_awkward_text_and_json_are_stored_exactly(database: Database) -> None:
    at = datetime(2026, 3, 14, 9, 26, 53, 123456, tzinfo=UTC)
    rows = [
        {"integration_key": "k", "format": "pagerduty", "received_at": at, "body": t, "error": t}
        for t in AWKWARD
    ]
    with database.write() as session:
        ids = insert_with_ids(session, PAYLOADS, rows)
        session.commit()
    with database.read() as session:
        stored = {r.id: r for r in session.scalars(select(AlertPayloadRow))}
    assert [stored[i].body for i in ids] == AWKWARD
    assert [stored[i].error for i in ids] == AWKWARD
    assert all(stored[i].received_at == at for i in ids)


NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def _group(session: Session) -> int:
    row = {
        "service_id": "api", "group_key": "g", "open_key": "api\x1fg", "status": "firing",
        "title": "g", "urgency": "high", "incident_severity": None, "declare": None,
        "incident_id": None, "alert_count": 0, "created_at": NOW, "last_alert_at": NOW,
        "acknowledged_at": None, "acknowledged_by": None, "resolved_at": None,
        "resolved_by": None, "version": 1,
    }  # fmt: skip
    return insert_with_ids(session, GROUPS, [row])[0]


def _alert(
    key: str, labels: dict[str, object], group_id: int, *, encoded: bool = False
) -> dict[str, object]:
    """An alert row as the ingest batch builds it (JSON columns encoded ahead, or not)."""
    signal = Signal(
        Action.TRIGGER,
        key,
        key,
        severity="error",
        labels=labels,  # type: ignore[arg-type]  # values beyond str: the JSON column's job
        details={"nested": {"list": [1, 2.5, True, None, "a\tb"]}},
    )
    columns = encoded_content(signal) if encoded else content(signal)
    row = alert_row(signal, columns, "k", "api", f"k\x1f{key}", AlertStatus.FIRING, NOW)
    row["group_id"] = group_id
    return row  # as the batch inserts it: the insert picks the table's columns


@pytest.mark.parametrize("encoded", [False, True], ids=["dicts", "encoded-ahead"])
def test_json_columns_round_trip(core_config: Database, encoded: bool) -> None:
    labels = {"alertname": "X", "text": 'tab\t"quote"\\ 😀', "big": 2**70}
    with core_config.write() as session:
        alert = _alert("j1", labels, _group(session), encoded=encoded)
        insert_with_ids(session, ALERTS, [alert], ENCODED_COLUMNS if encoded else frozenset())
        session.commit()
    with core_config.read() as session:
        row = session.scalars(select(AlertRow).where(AlertRow.dedup_key == "j1")).one()
    assert row.labels == labels
    assert row.links == []
    assert row.details == {"nested": {"list": [1, 2.5, True, None, "a\tb"]}}


def test_a_unique_violation_is_sqlalchemys_integrity_error(core_config: Database) -> None:
    """The ingest route retries on IntegrityError (another writer opened the same key)."""
    with core_config.write() as session:
        group_id = _group(session)
        insert_with_ids(session, ALERTS, [_alert("dup", {}, group_id)])
        session.commit()
    with core_config.write() as session, pytest.raises(IntegrityError):
        insert_rows(session, ALERTS, [{**_alert("dup", {}, group_id), "id": 10_000}])
    with core_config.read() as session:  # nothing half-written, the database still usable
        assert len(session.scalars(select(AlertRow).where(AlertRow.dedup_key == "dup")).all()) == 1
