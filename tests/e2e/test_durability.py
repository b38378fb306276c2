"""A 2xx means committed: kill -9 the server mid-stream; every acknowledged write is there."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.serving import ADMIN_TOKEN, running_server
from tocsin.storage.db import Database
from tocsin.storage.tables import IncidentRow, TimelineEventRow

pytestmark = pytest.mark.e2e


def test_kill_9_loses_no_acknowledged_declaration(db_url: str, tmp_path: Path) -> None:
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    with running_server(db_url, tmp_path) as (server, proc):

        def fire() -> None:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            with httpx.Client(base_url=server.base, headers=headers, timeout=5) as client:
                n = 0
                while not stop.is_set() and n < 2000:
                    n += 1
                    try:
                        res = client.post(
                            "/api/v1/incidents", json={"title": f"t{n}", "severity": "P1"}
                        )
                    except httpx.TransportError:
                        return  # the server is gone
                    if res.status_code == 201:
                        with lock:
                            acknowledged.append(res.json()["id"])

        threads = [threading.Thread(target=fire) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)  # mid-stream, while requests are in flight
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(10)
    assert len(acknowledged) > 50, "the server answered too few requests to prove anything"
    db = Database(db_url)
    try:
        with db.read() as session:
            stored = set(session.scalars(select(IncidentRow.id)))
            declared_events = set(
                session.scalars(
                    select(TimelineEventRow.incident_id).where(TimelineEventRow.kind == "declared")
                )
            )
    finally:
        db.dispose()
    missing = sorted(set(acknowledged) - stored)
    assert not missing, f"{len(missing)} acknowledged declarations lost: {missing[:10]}"
    assert set(acknowledged) <= declared_events
