"""Bulk-load a realistic year of incidents for bench/incidents.py (SQLAlchemy Core executemany)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Connection

from tocsin.storage.tables import (
    ChecklistItemRow,
    ChecklistTemplateItemRow,
    IncidentRoleAssignmentRow,
    IncidentRow,
    IncidentServiceRow,
    ServiceRow,
    SeverityRow,
    SlugCounterRow,
    TimelineEventRow,
    UserRow,
)

CHUNK = 5_000
OPEN = ("triggered", "investigating", "identified", "monitoring")
TAGS = ("customer-facing", "latency", "errors", "data", "security", "capacity", "dependency")


def load_incidents(url: str, count: int, *, seed: int) -> int:
    """Insert `count` incidents declared over the last year; return the newest incident id.

    Each incident gets its services, a commander, its severity's checklist (ticked when the
    incident has ended) and its "declared" timeline event, like a declaration through the API.
    """
    rng = random.Random(seed)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous=OFF")  # loading only; the server uses FULL
        severities = list(conn.scalars(select(SeverityRow.name).order_by(SeverityRow.position)))
        services = list(conn.scalars(select(ServiceRow.id).order_by(ServiceRow.id)))
        users = list(
            conn.scalars(select(UserRow.id).where(UserRow.role != "viewer").order_by(UserRow.id))
        )
        templates: dict[str, list[str]] = {}
        for severity, item in conn.execute(
            select(ChecklistTemplateItemRow.severity, ChecklistTemplateItemRow.text).order_by(
                ChecklistTemplateItemRow.severity, ChecklistTemplateItemRow.position
            )
        ):
            templates.setdefault(severity, []).append(item)
        # Most incidents are minor: weights for a four-level scheme, most severe first.
        weights = [3, 12, 35, 50][: len(severities)] or [1]
        offsets = sorted(rng.uniform(0, 365 * 86400) for _ in range(count))
        day_counters: dict[date, int] = {}
        batch: dict[str, list[dict[str, Any]]] = {}
        checklist_id = 0
        for number, offset in enumerate(reversed(offsets), start=1):
            declared = now - timedelta(seconds=offset)
            day = declared.date()
            day_counters[day] = day_counters.get(day, 0) + 1
            severity = rng.choices(severities, weights)[0]
            incident = _incident(rng, number, declared, now, severity, day_counters[day], users)
            batch.setdefault("incidents", []).append(incident)
            ended = incident["resolved_at"] is not None
            chosen = rng.sample(services, k=rng.choice([1, 1, 1, 2])) if services else []
            batch.setdefault("services", []).extend(
                {"incident_id": number, "service_id": s} for s in chosen
            )
            batch.setdefault("roles", []).append(
                {
                    "incident_id": number,
                    "role": "commander",
                    "user_id": incident["created_by"],
                    "assigned_at": declared,
                }
            )
            for position, item in enumerate(templates.get(severity, [])):
                checklist_id += 1
                batch.setdefault("checklist", []).append(
                    {
                        "id": checklist_id,
                        "incident_id": number,
                        "position": position,
                        "text": item,
                        "severity": severity,
                        "done": ended,
                        "done_at": incident["resolved_at"],
                        "done_by": incident["created_by"] if ended else None,
                    }
                )
            batch.setdefault("events", []).append(
                {
                    "id": number,
                    "incident_id": number,
                    "at": declared,
                    "actor": incident["created_by"],
                    "source": "api",
                    "kind": "declared",
                    "text": f"Declared {severity} incident: {incident['title']}",
                    "data": {"severity": severity, "services": chosen},
                    "pinned": False,
                }
            )
            if number % CHUNK == 0 or number == count:
                _flush(conn, batch)
                batch = {}
        conn.execute(
            SlugCounterRow.__table__.insert(),
            [{"day": d.isoformat(), "last": n} for d, n in day_counters.items()],
        )
        if engine.dialect.name == "postgresql":
            for table in ("incidents", "timeline_events", "checklist_items"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
    if engine.dialect.name == "postgresql":
        # What autovacuum would have done by the time a database holds a year of incidents.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return count


def _incident(
    rng: random.Random,
    number: int,
    declared: datetime,
    now: datetime,
    severity: str,
    sequence: int,
    users: list[str],
) -> dict[str, Any]:
    age = now - declared
    if age > timedelta(days=14):
        status = "closed" if rng.random() < 0.8 else "resolved"
    else:
        status = rng.choice((*OPEN, "resolved", "closed"))
    acknowledged = declared + timedelta(seconds=rng.randint(30, 1800))
    ended = status in ("resolved", "closed")
    resolved = declared + timedelta(seconds=rng.randint(1800, 6 * 3600)) if ended else None
    user = rng.choice(users) if users else "admin-token"
    return {
        "id": number,
        "slug": f"incident-{declared.date().isoformat()}-{sequence:03d}",
        "title": f"{rng.choice(('Elevated', 'Intermittent', 'Total'))} "
        f"{rng.choice(('errors', 'latency', 'timeouts', 'outage'))} on "
        f"{rng.choice(('checkout', 'login', 'search', 'payments', 'the API'))} #{number}",
        "description": "Customers report failures; dashboards show a rise in 5xx responses.",
        "severity": severity,
        "status": status,
        "customer_impact": "Some customers cannot complete checkout." if rng.random() < 0.5 else "",
        "resolution": "Rolled back the release." if ended else "",
        "tags": rng.sample(TAGS, k=rng.randint(0, 2)),
        "created_by": user,
        "version": rng.randint(2, 12),
        "created_at": declared,
        "updated_at": resolved or acknowledged,
        "detected_at": declared - timedelta(seconds=rng.randint(0, 900)),
        "declared_at": declared,
        "acknowledged_at": acknowledged if status != "triggered" else None,
        "mitigated_at": (resolved - timedelta(seconds=600)) if resolved else None,
        "resolved_at": resolved,
        "closed_at": (resolved + timedelta(days=1)) if status == "closed" and resolved else None,
    }


def _flush(conn: Connection, batch: dict[str, list[dict[str, Any]]]) -> None:
    tables = {
        "incidents": IncidentRow.__table__,
        "services": IncidentServiceRow.__table__,
        "roles": IncidentRoleAssignmentRow.__table__,
        "checklist": ChecklistItemRow.__table__,
        "events": TimelineEventRow.__table__,
    }
    for key, table in tables.items():  # parents first, for the foreign keys
        if batch.get(key):
            conn.execute(table.insert(), batch[key])
