"""The engine modules of the alerting part: heartbeats, payload retention, table statistics."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, text
from sqlalchemy.orm import Session

from tocsin.services import heartbeats
from tocsin.services.ingest import ingest_many
from tocsin.storage.tables import AlertPayloadRow

CLEANUP_EVERY = timedelta(hours=1)
STATISTICS_EVERY = timedelta(seconds=5)
# Tables an alert storm grows by thousands of rows a second, read by key on every ingest batch
# and every alert list.
HOT_TABLES = (
    "alerts",
    "alert_groups",
    "alert_log",
    "alert_payloads",
    "lifecycle_events",
    "escalations",
    "pages",
    "outbox",
)
_STALE = text(
    "SELECT relname FROM pg_stat_user_tables WHERE relname IN :names"
    " AND n_mod_since_analyze > GREATEST(500, n_live_tup / 2) ORDER BY relname"
).bindparams(bindparam("names", expanding=True))


class HeartbeatModule:
    """Raise an alert for every heartbeat whose interval passed without a ping."""

    name = "heartbeats"
    on_work = False

    def update(self, session: Session, now: datetime) -> datetime | None:
        due, next_at = heartbeats.overdue(session, now)
        if due:
            for result in ingest_many(session, heartbeats.deliveries(due, now)):
                if isinstance(result, Exception):
                    raise result
        return next_at


class PayloadRetentionModule:
    """Delete raw payloads older than the retention period (alerts and their history stay)."""

    name = "payload-retention"
    on_work = False

    def __init__(self, retention: timedelta) -> None:
        self.retention = retention

    def update(self, session: Session, now: datetime) -> datetime | None:
        session.execute(
            delete(AlertPayloadRow).where(AlertPayloadRow.received_at < now - self.retention)
        )
        return now + CLEANUP_EVERY


class TableStatisticsModule:
    """ANALYZE the hot tables once they have changed by half since their statistics (PostgreSQL).

    Autovacuum looks once a minute and waits for a tenth of a table to change. A fresh
    database hit by an alert storm grows from nothing to 100,000 alerts before it looks, and
    meanwhile the planner, believing the tables empty, answers every lookup by key with a
    full scan: ingest batches slowed down as the table grew, and listing an alert by its dedup
    key took seconds. Once analysed, the planner scales its estimates with the table's size;
    growth by half re-analyses (exponentially rarely). ANALYZE samples at most 30,000 rows.
    """

    name = "table-statistics"
    on_work = False

    def update(self, session: Session, now: datetime) -> datetime | None:
        stale = session.scalars(_STALE, {"names": list(HOT_TABLES)}).all()
        for table in stale:
            session.execute(text(f'ANALYZE "{table}"'))  # names from HOT_TABLES only
        return now + STATISTICS_EVERY
