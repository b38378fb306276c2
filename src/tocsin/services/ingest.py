"""The ingest pipeline: signals in, alerts deduplicated, grouped, suppressed, maybe declared.

This is the hot path of an alert storm. The group-commit writer hands `ingest_many` every
delivery queued meanwhile, so each batch costs a handful of statements whatever its size:
one insert per table with executemany, one prefetch of the open alerts and groups it touches,
one count per touched group. Decisions (routing, suppression, grouping, group status) are the
pure functions of tocsin.core.alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from tocsin.core.alerts import Action
from tocsin.services import wakeup
from tocsin.services.alerting_config import alerting_config
from tocsin.services.group_declare import declare_groups
from tocsin.services.ingest_batch import _Batch, _Done
from tocsin.services.ingest_model import Delivery, Ingested, Outcome, open_key
from tocsin.services.ingest_prepare import prepare
from tocsin.services.ingest_rows import PAYLOADS, change_row
from tocsin.storage.bulk import insert_with_ids
from tocsin.storage.tables import ChangeEventRow

_INDEXED_READS = text("SET LOCAL enable_seqscan = off")

__all__ = ["Delivery", "Ingested", "Outcome", "declare_groups", "ingest_many", "open_key"]


def ingest_many(session: Session, deliveries: Sequence[Delivery]) -> list[Ingested | Exception]:
    """Write a batch of deliveries in the caller's transaction; one result per delivery."""
    if not deliveries:
        return []
    now = max(d.received_at for d in deliveries)
    config = alerting_config(session)
    batch = _Batch(session, config, now)
    # What the API process did not work out ahead (ingest_prepare) is worked out here.
    deliveries = [prepare(d, config, batch.assessor) for d in deliveries]
    if batch.postgres:
        # Every read here is a lookup by key. Alert tables grow by thousands of rows a second
        # in a storm, far ahead of autovacuum's ANALYZE; until it runs, PostgreSQL thinks
        # them tiny and scans the whole table for each batch's 300 keys, slower and slower.
        session.execute(_INDEXED_READS)
    payload_ids = insert_with_ids(
        session,
        PAYLOADS,
        [
            {
                "integration_key": d.integration.key,
                "format": d.format,
                "received_at": d.received_at,
                "body": d.body,
                "error": None,
            }
            for d in deliveries
        ],
    )
    batch.prefetch_alerts(
        {
            prep.open_key if prep else open_key(d.integration.key, s.dedup_key)
            for d in deliveries
            for s, prep in zip(d.signals, d.prepared, strict=True)
        }
    )
    batch.prefetch_for(deliveries)
    results: list[Ingested | Exception] = []
    outcomes_of: list[list[_Done]] = []
    change_rows: list[dict[str, Any]] = []
    for delivery, payload_id in zip(deliveries, payload_ids, strict=True):
        outcomes: list[_Done] = []
        for signal, prep in zip(delivery.signals, delivery.prepared, strict=True):
            if prep is not None:
                outcomes.append(batch.trigger(delivery, signal, prep, payload_id))
            elif signal.action == Action.ACKNOWLEDGE:
                outcomes.append(batch.acknowledge(delivery, signal, payload_id))
            else:
                outcomes.append(batch.resolve(delivery, signal, payload_id))
        outcomes_of.append(outcomes)
        change_rows += [change_row(delivery, change, payload_id) for change in delivery.changes]
    batch.flush()
    if change_rows:
        session.execute(insert(ChangeEventRow), change_rows)
    if batch.postgres:
        # Delivered at COMMIT: engines in other processes wake for the new work.
        wakeup.notify_engines(session)
    for payload_id, done, delivery in zip(payload_ids, outcomes_of, deliveries, strict=True):
        results.append(
            Ingested(payload_id, tuple(d.outcome() for d in done), len(delivery.changes))
        )
    return results
