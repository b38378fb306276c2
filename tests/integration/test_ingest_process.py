"""TOCSIN_INGEST_PROCESS: ingested alerts written by a child process, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import ADMIN_TOKEN, EXAMPLES, FakeClock, apply_yaml
from tests.e2e.serving import in_thread
from tests.integration.test_ingest import AM_URL, am_alert, am_payload, pd_event
from tocsin.api.app import create_app
from tocsin.storage.db import Database
from tocsin.storage.tables import AlertRow


@pytest.fixture
def alerting_db(core_config: Database) -> Database:
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    return core_config


@pytest.fixture
def app(alerting_db: Database, make_settings: Callable[..., Any], clock: FakeClock) -> Any:
    settings = make_settings(alerting_db.url, ingest_process=True)
    return create_app(settings, alerting_db, clock)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def _child_pid(app: Any) -> int:
    pid = app.state.ctx.ingest.pid
    assert pid is not None
    return int(pid)


def _alerts(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    res = client.get("/api/v1/alerts", params={"limit": 200, **params})
    assert res.status_code == 200, res.text
    items: list[dict[str, Any]] = res.json()["items"]
    return items


def test_alerts_are_written_by_a_child_process(client: TestClient, app: Any) -> None:
    pid = _child_pid(app)
    assert pid != os.getpid()
    res = client.post("/v2/enqueue", json=pd_event(dedup_key="replica-lag"))
    assert res.status_code == 202, res.text
    assert res.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "replica-lag",
    }
    payload = am_payload(am_alert("HighLatency", cluster="eu-1"), am_alert("Down", cluster="eu-2"))
    res = client.post(AM_URL, json=payload)
    assert res.status_code == 202, res.text
    assert [a["action"] for a in res.json()["alerts"]] == ["created", "created"]
    # The same events again dedup onto the alerts the child made.
    res = client.post(AM_URL, json=payload)
    assert [a["action"] for a in res.json()["alerts"]] == ["refired", "refired"]
    assert {a["dedup_key"] for a in _alerts(client)} >= {"replica-lag"}
    assert len(_alerts(client)) == 3
    # Prepared in this process and sent without what the preparation repeats (labels,
    # annotations, links): stored whole, the first time and when re-fired.
    (latency,) = [a for a in _alerts(client) if a["labels"].get("alertname") == "HighLatency"]
    assert latency["labels"]["cluster"] == "eu-1"
    assert latency["details"]["summary"] == "HighLatency on eu-1"
    assert latency["links"][0]["href"] == "http://prometheus:9090/graph"
    assert latency["event_count"] == 2
    # Bad input is still answered by the API process, clearly.
    res = client.post("/v2/enqueue", json={"routing_key": pd_event()["routing_key"]})
    assert res.status_code == 400
    assert res.json()["status"] == "invalid event"
    assert _child_pid(app) == pid


def test_a_configuration_change_reaches_the_next_batch(
    client: TestClient, alerting_db: Database
) -> None:
    client.post(AM_URL, json=am_payload(am_alert("Warmup", cluster="c0")))
    # The child has read (and cached) the configuration; a silence applied now must count.
    apply_yaml(
        alerting_db,
        'silences:\n  - matchers: {alertname: Muted}\n    starts_at: "2026-01-01T00:00:00Z"\n'
        '    ends_at: "2099-01-01T00:00:00Z"\n    comment: test\n',
    )
    res = client.post(AM_URL, json=am_payload(am_alert("Muted", cluster="c1")))
    assert res.status_code == 202, res.text
    assert res.json()["alerts"][0]["status"] == "suppressed"


def test_noise_control_sees_what_a_prepared_payload_says(client: TestClient) -> None:
    # Several alerts: prepared in this process and sent without their view (what matchers
    # see), which the child rebuilds for the example's silence and inhibit rule.
    payload = am_payload(
        am_alert("DiskSpaceLow", env="staging", cluster="s", instance="a"),
        am_alert("DiskSpaceLow", env="prod", cluster="s", instance="b"),
        am_alert("ClusterDown", cluster="eu", severity="error"),
        am_alert("Slow", cluster="eu", severity="warning"),
        am_alert("Slow", cluster="us", severity="warning"),
    )
    res = client.post(AM_URL, json=payload)
    assert res.status_code == 202, res.text
    statuses = [a["status"] for a in res.json()["alerts"]]
    assert statuses == ["suppressed", "firing", "firing", "suppressed", "firing"]
    why = {a["labels"]["alertname"] + a["labels"].get("env", a["labels"]["cluster"]):
           a["suppressed_by"] for a in _alerts(client)}  # fmt: skip
    assert why["DiskSpaceLowstaging"].startswith("silence:")
    assert why["Sloweu"].startswith("inhibit")
    assert why["DiskSpaceLowprod"] is None


def _stored_keys(db: Database) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(AlertRow.dedup_key)))


def test_concurrent_requests_share_transactions(app: Any, alerting_db: Database) -> None:
    async def send_all(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            answers = await asyncio.gather(
                *(http.post("/v2/enqueue", json=pd_event(dedup_key=f"k-{i}")) for i in range(300))
            )
        return [a.status_code for a in answers]

    with in_thread(app) as base:
        statuses = asyncio.run(send_all(base))
    assert statuses == [202] * 300
    assert _stored_keys(alerting_db) == {f"k-{i}" for i in range(300)}
    ingest = app.state.ctx.ingest
    assert ingest.items_done == 300
    assert ingest.batches < 300  # batched, not one transaction per event


def test_a_killed_child_is_replaced_and_nothing_answered_is_lost(
    client: TestClient, app: Any, alerting_db: Database
) -> None:
    first = _child_pid(app)
    answered: list[str] = []
    for i in range(5):
        assert client.post("/v2/enqueue", json=pd_event(dedup_key=f"before-{i}")).status_code == 202
        answered.append(f"before-{i}")
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    i = 0
    while time.monotonic() < deadline:
        res = client.post("/v2/enqueue", json=pd_event(dedup_key=f"after-{i}"))
        assert res.status_code in (202, 503), res.text
        if res.status_code == 503:
            assert res.headers["Retry-After"] == "1"
        else:
            answered.append(f"after-{i}")
            if _child_pid(app) != first:
                break
        i += 1
    assert _child_pid(app) != first
    assert set(answered) <= _stored_keys(alerting_db)


def test_the_child_stops_with_the_server(app: Any) -> None:
    with TestClient(app) as client:
        client.post("/v2/enqueue", json=pd_event(dedup_key="one"))
        pid = _child_pid(app)
    deadline = time.monotonic() + 15
    while _alive(pid):
        assert time.monotonic() < deadline, "ingest child still running after shutdown"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not yet reaped) counts as stopped.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _engine_cycles(client: TestClient) -> float:
    """How many wake-ups the engine has served, from the server's /metrics."""
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith("tocsin_engine_wake_delay_seconds_count"):
            return float(line.split()[-1])
    raise AssertionError("no engine metrics on /metrics")


def _wait_cycles(client: TestClient, above: float) -> float:
    deadline = time.monotonic() + 10
    while (cycles := _engine_cycles(client)) <= above:
        assert time.monotonic() < deadline, "the engine in the ingest process was not woken"
        time.sleep(0.02)
    return cycles


def test_the_engine_is_woken_by_the_child_and_by_the_server(
    alerting_db: Database, make_settings: Callable[..., Any]
) -> None:
    settings = make_settings(alerting_db.url, ingest_process=True)
    app = create_app(settings, alerting_db, run_engine=True)
    # SQLite: beside the writer, in the child. PostgreSQL: here, off the writer's core.
    assert (app.state.engine is None) == alerting_db.is_sqlite
    assert app.state.ctx.ingest.runs_engine == alerting_db.is_sqlite
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        before = _wait_cycles(client, -1)
        # Committed by the child: it wakes its engine, or the server wakes its own.
        event = pd_event(dedup_key="paged", severity="critical")
        assert client.post("/v2/enqueue", json=event).status_code == 202
        after_ingest = _wait_cycles(client, before)
        # Committed by the server: on SQLite the wake goes over the socket.
        res = client.post("/api/v1/incidents", json={"title": "by hand", "severity": "P1"})
        assert res.status_code == 201, res.text
        _wait_cycles(client, after_ingest)
        assert "tocsin_ingest_process_batches" in client.get("/metrics").text
