"""Seed 001's declaration criteria, expressed as routes, decide from what alerts carry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN, FakeClock, apply_yaml
from tocsin.storage.db import Database

SEED = Path(__file__).resolve().parents[2] / "examples" / "seeds" / "001_monitoring.yaml"
URL = "/api/v1/ingest/seed001-prometheus"


@pytest.fixture
def seed_api(database: Database, make_settings: Any, clock: FakeClock) -> Any:
    from tocsin.api.app import create_app

    apply_yaml(database, SEED.read_text())
    app = create_app(make_settings(database.url), database, clock)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def send(api: TestClient, clock: FakeClock, name: str, firing_for: timedelta,
         **annotations: str) -> dict[str, Any]:  # fmt: skip
    starts = (clock() - firing_for).isoformat().replace("+00:00", "Z")
    body = {
        "version": "4", "status": "firing", "receiver": "tocsin", "groupKey": f"{{}}:{name}",
        "alerts": [{"status": "firing", "labels": {"alertname": name, "instance": "web-1"},
                    "annotations": {"summary": name, **annotations}, "startsAt": starts}],
    }  # fmt: skip
    res = api.post(URL, json=body)
    assert res.status_code == 202, res.text
    groups = api.get("/api/v1/alert-groups", params={"label": f"alertname={name}"}).json()
    group: dict[str, Any] = groups["items"][0]
    return group


def test_service_unavailable_for_more_than_five_minutes_declares_p0(
    seed_api: TestClient, clock: FakeClock
) -> None:
    assert send(seed_api, clock, "ServiceUnavailable", timedelta(minutes=3))["incident_id"] is None
    clock.advance(minutes=3)  # Alertmanager re-sends; the outage is now 6 minutes old
    group = send(seed_api, clock, "ServiceUnavailable", timedelta(minutes=6))
    assert group["incident_id"] is not None
    incident = seed_api.get(f"/api/v1/incidents/{group['incident_id']}").json()
    assert incident["severity"] == "P0"


@pytest.mark.parametrize(
    ("rate", "minutes", "declared"),
    [("7.2", 3, True), ("4.9", 10, False), ("12%", 1, False)],
)
def test_error_rate_above_five_percent_for_two_minutes_declares_p1(
    seed_api: TestClient, clock: FakeClock, rate: str, minutes: int, declared: bool
) -> None:
    group = send(seed_api, clock, "HighErrorRate", timedelta(minutes=minutes), error_rate=rate)
    assert (group["incident_id"] is not None) is declared


@pytest.mark.parametrize(
    ("seconds", "minutes", "declared"), [("6.1", 6, True), ("4", 30, False), ("9", 4, False)]
)
def test_response_time_above_five_seconds_for_five_minutes_declares_p1(
    seed_api: TestClient, clock: FakeClock, seconds: str, minutes: int, declared: bool
) -> None:
    group = send(seed_api, clock, "SlowResponses", timedelta(minutes=minutes),
                 response_time_seconds=seconds)  # fmt: skip
    assert (group["incident_id"] is not None) is declared
    if declared:
        incident = seed_api.get(f"/api/v1/incidents/{group['incident_id']}").json()
        assert incident["severity"] == "P1"
