"""Row shapes and prepared statements of the ingest pipeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, func, or_, select, true, update

from tocsin.core.alerts import (
    SCALARS,
    AlertStatus,
    ChangeEvent,
    Matcher,
    Signal,
    Suppression,
    Urgency,
)
from tocsin.services.ingest_model import Delivery
from tocsin.storage.tables import (
    AlertGroupRow,
    AlertLogRow,
    AlertPayloadRow,
    AlertRow,
)

# --- row helpers ---

CHUNK = 500  # bound IN (...) lists well below SQLite's variable limit
ALERT_COLUMNS = frozenset(c.name for c in AlertRow.__table__.columns)
GROUP_COLUMNS = frozenset(c.name for c in AlertGroupRow.__table__.columns)
# Core statements, not ORM bulk operations: at storm rates the ORM's per-row bookkeeping
# costs more than the database.
ALERTS = cast(Table, AlertRow.__table__)
GROUPS = cast(Table, AlertGroupRow.__table__)
PAYLOADS = cast(Table, AlertPayloadRow.__table__)
LOGS = cast(Table, AlertLogRow.__table__)
UPDATE_ALERT = (
    update(ALERTS)
    .where(ALERTS.c.id == bindparam("_id"))
    .values({name: bindparam(name) for name in sorted(ALERT_COLUMNS - {"id"})})
)
UPDATE_GROUP = (
    update(GROUPS)
    .where(GROUPS.c.id == bindparam("_id"))
    .values({name: bindparam(name) for name in sorted(GROUP_COLUMNS - {"id"})})
)


def _by_keys(table: Table, column: Any) -> Select[Any]:
    """Rows of `table` whose `column` is in the "keys" parameter, in id order."""
    return select(table).where(column.in_(bindparam("keys", expanding=True))).order_by(table.c.id)


# Reads of every batch, built once with expanding IN parameters ("keys"): building the
# expression costs more than running it on a small batch. Locking variants for PostgreSQL
# (ids in order, so two processes ingesting the same keys never deadlock).
OPEN_ALERTS = _by_keys(ALERTS, ALERTS.c.open_key)
GROUPS_BY_ID = _by_keys(GROUPS, GROUPS.c.id)
GROUPS_BY_OPEN_KEY = _by_keys(GROUPS, GROUPS.c.open_key)
LOCKING = {q: q.with_for_update() for q in (OPEN_ALERTS, GROUPS_BY_ID, GROUPS_BY_OPEN_KEY)}
OPEN_COUNTS = (
    select(ALERTS.c.group_id, ALERTS.c.status, func.count())
    .where(ALERTS.c.group_id.in_(bindparam("keys", expanding=True)), ALERTS.c.status != "resolved")
    .group_by(ALERTS.c.group_id, ALERTS.c.status)
)


SOURCE_COLUMNS = {
    "severity": AlertRow.severity,
    "title": AlertRow.title,
    "source": AlertRow.source,
    "service": AlertRow.service_id,
    "dedup_key": AlertRow.dedup_key,
}


def source_condition(matchers: Mapping[str, Sequence[Matcher]]) -> Any:
    """Return a SQL condition every alert matching `matchers` meets (equality only)."""
    parts = []
    for name, conditions in matchers.items():
        for matcher in conditions:
            if matcher.op != "eq":
                continue
            value = str(matcher.value)
            label = AlertRow.labels[name].as_string() == value
            column = SOURCE_COLUMNS.get(name)
            parts.append(or_(label, column == value) if column is not None else label)
    return and_(true(), *parts)


def update_params(row: Mapping[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k in columns and k != "id"}
    out["_id"] = row["id"]
    return out


def alert_row(
    signal: Signal,
    content: Mapping[str, Any],
    integration: str,
    service: str,
    key: str,
    status: AlertStatus,
    now: datetime,
) -> dict[str, Any]:
    """Return a new alert's row; `content` holds the columns taken from the signal."""
    row: dict[str, Any] = {
        "id": None,
        "integration_key": integration,
        "service_id": service,
        "group_id": None,
        "dedup_key": signal.dedup_key,
        "open_key": key,
        "status": status.value,
        "suppressed_by": None,
        "urgency": Urgency.HIGH.value,
        "starts_at": signal.starts_at,
        "ends_at": None,
        "first_seen_at": now,
        "last_seen_at": now,
        "acknowledged_at": None,
        "resolved_at": None,
        "event_count": 1,
    }
    row.update(content)
    return row


def stored_view(row: Mapping[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {
        k: v for k, v in (row["details"] or {}).items() if isinstance(v, SCALARS)
    }
    view.update(
        {
            "title": row["title"],
            "severity": row["severity"],
            "source": row["source"],
            "service": row["service_id"],
            "dedup_key": row["dedup_key"],
        }
    )
    view.update(row["labels"] or {})
    return view


def change_row(delivery: Delivery, change: ChangeEvent, payload_id: int) -> dict[str, Any]:
    return {
        "integration_key": delivery.integration.key,
        "service_id": delivery.integration.service,
        "summary": change.summary[:1024],
        "source": change.source,
        "timestamp": change.timestamp,
        "links": [{"href": link.href, "text": link.text} for link in change.links],
        "custom_details": dict(change.custom_details),
        "received_at": delivery.received_at,
        "payload_id": payload_id,
    }


def why_text(why: Suppression | None) -> str:
    if why is None:
        return ""
    return {
        "silence": "silenced by silence",
        "maintenance": "in maintenance window",
        "inhibited": "inhibited by rule",
    }[why.kind] + f" {why.ref}"


def chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
