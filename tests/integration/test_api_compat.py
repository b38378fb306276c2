"""Seed 001's monitoring incident API: POST/PATCH /api/monitoring/incidents."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import FakeClock


def test_seed_001_create_and_resolve(api: TestClient, clock: FakeClock) -> None:
    res = api.post(
        "/api/monitoring/incidents",
        json={
            "title": "Database Connection Failures",
            "description": "Multiple database connection timeouts detected",
            "severity": "high",
            "affectedServices": ["database", "api"],
            "createdBy": "on-call-engineer",
        },
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["severity"] == "P1"  # high → second level of P0–P3
    assert body["affectedServices"] == ["api", "database"]
    assert body["createdBy"] == "on-call-engineer"
    incident_id = body["id"]
    clock.advance(minutes=45)
    resolved_at_ms = 1773483600000  # 2026-03-14T10:20:00Z
    res = api.patch(
        f"/api/monitoring/incidents/{incident_id}",
        json={
            "status": "resolved",
            "resolution": "Database connection pool increased",
            "resolvedBy": "incident-commander",
            "resolvedAt": resolved_at_ms,
        },
    )
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["status"] == "resolved"
    assert out["resolution"] == "Database connection pool increased"
    assert out["resolvedAt"] == resolved_at_ms
    full = api.get(f"/api/v1/incidents/{incident_id}").json()
    assert full["milestones"]["resolved"].startswith("2026-03-14T10:20:00")
    events = api.get(f"/api/v1/incidents/{incident_id}/timeline").json()["items"]
    texts = " | ".join(e["text"] for e in events)
    assert "Reported by on-call-engineer" in texts
    assert "Resolved by incident-commander" in texts
    assert {e["source"] for e in events} == {"monitoring-api"}


def test_seed_001_severity_words_map_onto_the_scheme(api: TestClient) -> None:
    for word, level in (("critical", "P0"), ("high", "P1"), ("medium", "P2"), ("low", "P3")):
        res = api.post("/api/monitoring/incidents", json={"title": word, "severity": word})
        assert res.json()["severity"] == level
    res = api.post("/api/monitoring/incidents", json={"title": "x", "severity": "catastrophic"})
    assert res.status_code == 422
    assert "critical" in res.json()["valid"]


def test_seed_001_bad_input(api: TestClient) -> None:
    assert api.post("/api/monitoring/incidents", json={"severity": "high"}).status_code == 422
    assert (
        api.patch("/api/monitoring/incidents/424242", json={"status": "resolved"}).status_code
        == 404
    )
    inc = api.post("/api/monitoring/incidents", json={"title": "x", "severity": "low"}).json()
    res = api.patch(f"/api/monitoring/incidents/{inc['id']}", json={"status": "exploded"})
    assert res.status_code == 422
    res = api.patch(f"/api/monitoring/incidents/{inc['id']}", json={"status": "closed"})
    assert res.status_code == 409
    res = api.patch(f"/api/monitoring/incidents/{inc['id']}", json={"resolvedAt": "yesterday"})
    assert res.status_code == 422
    assert api.post("/api/monitoring/incidents", json={"title": "x", "severity": "low"},
                    headers={"Authorization": ""}).status_code == 401  # fmt: skip
