"""The engine loop: modules run when due or woken, failures are contained, wake-ups measured."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from tests.conftest import FakeClock
from tocsin.engine.loop import Engine
from tocsin.engine.modules import (
    STATISTICS_EVERY,
    PayloadRetentionModule,
    TableStatisticsModule,
)
from tocsin.engine.waker import Waker
from tocsin.storage.db import Database
from tocsin.storage.tables import AlertPayloadRow


class Recorder:
    def __init__(self, name: str, on_work: bool, every: timedelta | None) -> None:
        self.name = name
        self.on_work = on_work
        self.every = every
        self.runs: list[datetime] = []

    def update(self, session: Session, now: datetime) -> datetime | None:
        self.runs.append(now)
        return now + self.every if self.every else None


class Broken:
    name = "broken"
    on_work = True

    def update(self, session: Session, now: datetime) -> datetime | None:
        raise RuntimeError("boom")


def test_modules_run_when_due_or_woken(database: Database, clock: FakeClock) -> None:
    timed = Recorder("timed", on_work=False, every=timedelta(minutes=1))
    eager = Recorder("eager", on_work=True, every=None)
    engine = Engine(database, clock, [Broken(), timed, eager], registry=CollectorRegistry())
    deadline = engine.run_once()
    assert deadline == clock() + timedelta(seconds=5)  # the broken module retries soon
    assert (len(timed.runs), len(eager.runs)) == (1, 1)  # the broken module stopped nothing
    engine.run_once(woken=True)
    assert (len(timed.runs), len(eager.runs)) == (1, 2)  # woken: only modules on work
    engine.run_once(woken=False)
    assert (len(timed.runs), len(eager.runs)) == (1, 2)
    clock.advance(minutes=1)
    engine.run_once(woken=False)  # everything is due again (no deadline means MAX_SLEEP)
    assert (len(timed.runs), len(eager.runs)) == (2, 3)
    assert engine.failures.labels("broken")._value.get() == 3


def test_a_wake_signal_reaches_the_loop_at_once(database: Database) -> None:
    eager = Recorder("eager", on_work=True, every=None)
    waker = Waker()
    registry = CollectorRegistry()
    engine = Engine(database, lambda: datetime.now().astimezone(), [eager], waker=waker,
                    registry=registry)  # fmt: skip
    engine.start()
    try:
        deadline = time.monotonic() + 5
        while not eager.runs and time.monotonic() < deadline:
            time.sleep(0.01)
        before = len(eager.runs)
        started = time.monotonic()
        waker.notify()
        while len(eager.runs) == before and time.monotonic() - started < 5:
            time.sleep(0.001)
        assert len(eager.runs) > before
        assert time.monotonic() - started < 0.5
        count = registry.get_sample_value("tocsin_engine_wake_delay_seconds_count")
        assert count is not None
        assert count >= 1
    finally:
        engine.stop()
    assert not any(t.name == "tocsin-engine" and t.is_alive() for t in threading.enumerate())


def test_payload_retention_deletes_old_raw_payloads(database: Database, clock: FakeClock) -> None:
    with database.write() as session:
        session.execute(
            insert(AlertPayloadRow),
            [
                {"integration_key": "k", "format": "pagerduty", "body": "{}",
                 "received_at": clock() - timedelta(days=d)}
                for d in (1, 29, 31, 400)
            ],
        )  # fmt: skip
        session.commit()
    engine = Engine(database, clock, [PayloadRetentionModule(timedelta(days=30))])
    assert engine.run_once() == clock() + timedelta(hours=1)
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(AlertPayloadRow)) == 2


def test_table_statistics_analyses_a_table_that_grew(database: Database, clock: FakeClock) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL's planner statistics; SQLite plans from its indexes alone")
    with database.write() as session:
        rows = [
            {"integration_key": "k", "format": "pagerduty", "body": "{}", "received_at": clock()}
            for _ in range(1200)
        ]
        session.execute(insert(AlertPayloadRow), rows)
        session.commit()
    module = TableStatisticsModule()
    deadline = time.monotonic() + 15
    while True:
        # The cumulative statistics reach pg_stat_user_tables within a second or so.
        with database.write() as session:
            assert module.update(session, clock()) == clock() + STATISTICS_EVERY
            session.commit()
        with database.read() as session:
            analysed = session.scalar(
                text(
                    "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'alert_payloads'"
                )
            )
        if analysed is not None:
            break
        assert time.monotonic() < deadline, "alert_payloads was never analysed"
        time.sleep(0.2)
    with database.read() as session:
        estimate = session.scalar(
            text("SELECT reltuples FROM pg_class WHERE relname = 'alert_payloads'")
        )
    assert estimate == 1200
