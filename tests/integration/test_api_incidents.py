"""The incident REST API, end to end over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import FakeClock


def declare(api: TestClient, **kw: Any) -> dict[str, Any]:
    body = {"title": "Checkout is down", "severity": "P1", "services": ["api"], **kw}
    res = api.post("/api/v1/incidents", json=body)
    assert res.status_code == 201, res.text
    data: dict[str, Any] = res.json()
    return data


def kinds(api: TestClient, incident_id: int) -> list[str]:
    return [e["kind"] for e in api.get(f"/api/v1/incidents/{incident_id}/timeline").json()["items"]]


def test_declare_returns_201_with_id_ref_slug_and_checklist(
    api: TestClient, clock: FakeClock
) -> None:
    res = api.post(
        "/api/v1/incidents",
        json={
            "title": "DB down",
            "description": "timeouts",
            "severity": "P0",
            "services": ["database", "api"],
        },
    )
    assert res.status_code == 201
    body = res.json()
    assert isinstance(body["id"], int)
    assert body["ref"] == f"INC-{body['id']}"
    assert body["slug"] == "incident-2026-03-14-001"
    assert body["status"] == "triggered"
    assert body["services"] == ["api", "database"]
    assert body["checklist_total"] == 7
    assert body["checklist"][0]["text"] == "Acknowledge alert immediately"
    assert body["milestones"]["declared"].startswith("2026-03-14T09:26:53")
    assert body["respond_by"].startswith("2026-03-14T09:41:53")  # P0 respond_within 15m
    assert res.headers["location"] == f"/api/v1/incidents/{body['id']}"
    second = declare(api)
    assert second["slug"] == "incident-2026-03-14-002"
    clock.advance(days=1)
    assert declare(api)["slug"] == "incident-2026-03-15-001"


def test_get_by_number_or_reference(api: TestClient) -> None:
    inc = declare(api)
    assert api.get(f"/api/v1/incidents/{inc['id']}").json()["title"] == "Checkout is down"
    assert api.get(f"/api/v1/incidents/INC-{inc['id']}").json()["id"] == inc["id"]
    assert api.get("/api/v1/incidents/999999").status_code == 404
    assert api.get("/api/v1/incidents/not-a-ref").status_code == 404


def test_lifecycle_records_milestones_and_timeline(api: TestClient, clock: FakeClock) -> None:
    inc = declare(api)
    url = f"/api/v1/incidents/{inc['id']}"
    clock.advance(minutes=2)
    acked = api.post(f"{url}/acknowledge").json()
    assert acked["status"] == "investigating"
    assert acked["milestones"]["acknowledged"].startswith("2026-03-14T09:28:53")
    clock.advance(minutes=10)
    assert api.patch(url, json={"status": "identified"}).json()["status"] == "identified"
    clock.advance(minutes=10)
    mon = api.post(f"{url}/status", json={"status": "monitoring", "note": "rolled back"}).json()
    assert mon["milestones"]["mitigated"].startswith("2026-03-14T09:48:53")
    clock.advance(minutes=30)
    res = api.patch(url, json={"status": "resolved", "resolution": "rollback of 1.2.3"}).json()
    assert res["status"] == "resolved"
    assert res["resolution"] == "rollback of 1.2.3"
    assert res["milestones"]["resolved"].startswith("2026-03-14T10:18:53")
    closed = api.post(f"{url}/status", json={"status": "closed"}).json()
    assert closed["allowed_next"] == []
    assert kinds(api, inc["id"]).count("status_changed") == 5
    assert "acknowledged" in kinds(api, inc["id"])


def test_illegal_transition_is_409_with_allowed_next(api: TestClient) -> None:
    inc = declare(api)
    res = api.patch(f"/api/v1/incidents/{inc['id']}", json={"status": "closed"})
    assert res.status_code == 409
    body = res.json()
    assert body["current"] == "triggered"
    assert set(body["allowed_next"]) == {"investigating", "identified", "monitoring", "resolved"}
    assert "detail" in body


def test_severity_role_and_service_changes_are_recorded(api: TestClient) -> None:
    inc = declare(api, severity="P2")
    assert inc["checklist_total"] == 0
    url = f"/api/v1/incidents/{inc['id']}"
    out = api.patch(
        url,
        json={
            "severity": "P1",
            "roles": {"commander": "alice", "scribe": "bob"},
            "services": ["database"],
        },
    ).json()
    assert out["severity"] == "P1"
    assert out["checklist_total"] == 4
    assert out["roles"] == {"commander": "alice", "scribe": "bob"}
    assert out["services"] == ["database"]
    out = api.put(f"{url}/roles/commander", json={"user": "bob"}).json()
    assert out["roles"]["commander"] == "bob"
    out = api.put(f"{url}/roles/scribe", json={"user": None}).json()
    assert "scribe" not in out["roles"]
    events = api.get(f"{url}/timeline").json()["items"]
    sev = next(e for e in events if e["kind"] == "severity_changed")
    assert sev["data"] == {"old": "P2", "new": "P1"}
    reassigned = [
        e for e in events if e["kind"] == "role_assigned" and e["data"]["role"] == "commander"
    ]
    assert reassigned[-1]["data"] == {"role": "commander", "old": "alice", "new": "bob"}
    assert "services_changed" in [e["kind"] for e in events]
    assert all(e["actor"] == "admin-token" for e in events)


def test_unknown_names_are_422_listing_valid_ones(api: TestClient) -> None:
    res = api.post("/api/v1/incidents", json={"title": "x", "severity": "P9"})
    assert res.status_code == 422
    assert res.json()["valid"] == ["P0", "P1", "P2", "P3"]
    res = api.post("/api/v1/incidents", json={"title": "x", "severity": "P1", "services": ["nope"]})
    assert res.status_code == 422
    assert res.json()["valid"] == ["api", "database"]
    assert res.json()["errors"][0]["field"] == "services"
    inc = declare(api)
    res = api.put(f"/api/v1/incidents/{inc['id']}/roles/chef", json={"user": "alice"})
    assert res.status_code == 422
    assert res.json()["valid"] == ["commander", "communications", "scribe"]
    res = api.put(f"/api/v1/incidents/{inc['id']}/roles/commander", json={"user": "mallory"})
    assert res.status_code == 422


def test_validation_errors_name_the_field(api: TestClient) -> None:
    res = api.post("/api/v1/incidents", json={"severity": "P1"})
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "title"
    res = api.post(
        "/api/v1/incidents", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert res.status_code == 422
    res = api.post("/api/v1/incidents", json={"title": "x", "severity": "P1", "services": "api"})
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "services"


def test_body_over_one_mib_is_413(api: TestClient) -> None:
    res = api.post(
        "/api/v1/incidents", json={"title": "x", "severity": "P1", "description": "a" * 1_100_000}
    )
    assert res.status_code == 413


def test_notes_pins_and_edits_keep_history(api: TestClient) -> None:
    inc = declare(api)
    url = f"/api/v1/incidents/{inc['id']}"
    note = api.post(f"{url}/notes", json={"text": "looking at the pool"})
    assert note.status_code == 201
    event = note.json()
    assert event["kind"] == "note"
    assert event["text"] == "looking at the pool"
    edited = api.patch(f"{url}/timeline/{event['id']}", json={"text": "pool exhausted"}).json()
    assert edited["text"] == "pool exhausted"
    assert edited["revisions"][0]["text"] == "looking at the pool"
    pinned = api.post(f"{url}/timeline/{event['id']}/pin").json()
    assert pinned["pinned"] is True
    only_pinned = api.get(f"{url}/timeline", params={"pinned": "true"}).json()["items"]
    assert [e["id"] for e in only_pinned] == [event["id"]]
    declared_event = api.get(f"{url}/timeline").json()["items"][0]
    res = api.patch(f"{url}/timeline/{declared_event['id']}", json={"text": "rewrite history"})
    assert res.status_code == 422
    assert api.post(f"{url}/notes", json={"text": "   "}).status_code == 422
    after = api.get(f"{url}/timeline", params={"after": event["id"]}).json()["items"]
    assert all(e["id"] > event["id"] for e in after)


def test_checklist_ticks_record_who_and_when(api: TestClient, clock: FakeClock) -> None:
    inc = declare(api, severity="P0")
    url = f"/api/v1/incidents/{inc['id']}"
    item = api.get(f"{url}/checklist").json()["items"][1]
    clock.advance(minutes=1)
    items = api.post(f"{url}/checklist/{item['id']}", json={"done": True}).json()["items"]
    ticked = next(i for i in items if i["id"] == item["id"])
    assert ticked["done"] is True
    assert ticked["done_by"] == "admin-token"
    assert ticked["done_at"].startswith("2026-03-14T09:27:53")
    items = api.post(f"{url}/checklist/{item['id']}", json={"done": False}).json()["items"]
    assert next(i for i in items if i["id"] == item["id"])["done"] is False
    assert api.post(f"{url}/checklist/999999", json={"done": True}).status_code == 404
    assert api.get(url).json()["checklist_done"] == 0


def test_milestone_correction_needs_commander_or_admin_and_a_reason(api: TestClient) -> None:
    inc = declare(api)
    url = f"/api/v1/incidents/{inc['id']}"
    res = api.put(
        f"{url}/milestones/detected",
        json={"at": "2026-03-14T08:55:00Z", "reason": "alert fired late"},
    )
    assert res.status_code == 200
    assert res.json()["milestones"]["detected"].startswith("2026-03-14T08:55:00")
    events = api.get(f"{url}/timeline").json()["items"]
    event = next(e for e in events if e["kind"] == "milestone_corrected")
    assert event["data"]["reason"] == "alert fired late"
    assert event["data"]["old"].startswith("2026-03-14T09:26:53")
    assert api.put(f"{url}/milestones/detected", json={"at": None, "reason": ""}).status_code == 422
    assert api.put(f"{url}/milestones/bogus", json={"at": None, "reason": "x"}).status_code == 422


def test_list_filters_and_cursor_pagination(api: TestClient) -> None:
    ids = [
        declare(api, title=f"incident {i}", severity="P1" if i % 2 else "P2")["id"]
        for i in range(7)
    ]
    api.post(f"/api/v1/incidents/{ids[0]}/resolve", json={"resolution": "done"})
    page = api.get("/api/v1/incidents", params={"limit": 3}).json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:3]
    seen = [i["id"] for i in page["items"]]
    while page["next_cursor"]:
        page = api.get(
            "/api/v1/incidents", params={"limit": 3, "cursor": page["next_cursor"]}
        ).json()
        seen += [i["id"] for i in page["items"]]
    assert seen == ids[::-1]
    p1 = api.get("/api/v1/incidents", params={"severity": "P1"}).json()["items"]
    assert {i["severity"] for i in p1} == {"P1"}
    assert len(p1) == 3
    resolved = api.get("/api/v1/incidents", params={"status": "resolved"}).json()["items"]
    assert [i["id"] for i in resolved] == [ids[0]]
    assert len(api.get("/api/v1/incidents", params={"open": "true"}).json()["items"]) == 6
    assert [
        i["id"] for i in api.get("/api/v1/incidents", params={"q": "INCIDENT 3"}).json()["items"]
    ] == [ids[3]]
    assert api.get("/api/v1/incidents", params={"service": "database"}).json()["items"] == []
    assert len(api.get("/api/v1/incidents", params={"service": "api"}).json()["items"]) == 7
    assert api.get("/api/v1/incidents", params={"cursor": "garbage!"}).status_code == 422
    assert api.get("/api/v1/incidents", params={"status": "nope"}).status_code == 422


def test_time_range_and_tag_filters(api: TestClient, clock: FakeClock) -> None:
    early = declare(api, tags=["db", "eu-west"])
    clock.advance(hours=2)
    late = declare(api, tags=["db_pool"])
    items = api.get("/api/v1/incidents", params={"since": "2026-03-14T10:00:00Z"}).json()["items"]
    assert [i["id"] for i in items] == [late["id"]]
    items = api.get("/api/v1/incidents", params={"until": "2026-03-14T10:00:00Z"}).json()["items"]
    assert [i["id"] for i in items] == [early["id"]]
    items = api.get("/api/v1/incidents", params={"tag": "db"}).json()["items"]
    assert [i["id"] for i in items] == [early["id"]]


def test_version_check_rejects_stale_writes(api: TestClient) -> None:
    inc = declare(api)
    url = f"/api/v1/incidents/{inc['id']}"
    assert api.patch(url, json={"title": "new", "version": inc["version"]}).status_code == 200
    stale = api.patch(url, json={"title": "newer", "version": inc["version"]})
    assert stale.status_code == 409
    assert stale.json()["version"] == inc["version"] + 1
    assert (
        api.patch(
            url, json={"title": "newest"}, headers={"If-Match": str(inc["version"])}
        ).status_code
        == 409
    )


def test_auth_401_and_403(api: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert api.get("/api/v1/incidents", headers=anonymous).status_code == 401
    assert (
        api.get("/api/v1/incidents", headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    viewer = api.post("/api/v1/tokens", json={"name": "dash", "scopes": ["read"]}).json()["token"]
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    assert api.get("/api/v1/incidents", headers=as_viewer).status_code == 200
    assert (
        api.post(
            "/api/v1/incidents", json={"title": "x", "severity": "P1"}, headers=as_viewer
        ).status_code
        == 403
    )
    responder = api.post("/api/v1/tokens", json={"name": "bot", "scopes": ["respond"]}).json()[
        "token"
    ]
    as_responder = {"Authorization": f"Bearer {responder}"}
    created = api.post(
        "/api/v1/incidents", json={"title": "x", "severity": "P1"}, headers=as_responder
    )
    assert created.status_code == 201
    assert created.json()["created_by"] == "token:bot"
    assert api.get("/api/v1/config/export", headers=as_responder).status_code == 403


def test_user_token_is_attributed_and_capped_by_role(api: TestClient) -> None:
    token = api.post(
        "/api/v1/tokens", json={"name": "carol-cli", "scopes": ["admin"], "user": "carol"}
    ).json()
    headers = {"Authorization": f"Bearer {token['token']}", "X-Tocsin-Source": "cli"}
    # carol is a viewer: her token cannot write whatever scopes it was created with
    assert (
        api.post(
            "/api/v1/incidents", json={"title": "x", "severity": "P1"}, headers=headers
        ).status_code
        == 403
    )
    bob = api.post(
        "/api/v1/tokens", json={"name": "bob-cli", "scopes": ["respond"], "user": "bob"}
    ).json()
    headers = {"Authorization": f"Bearer {bob['token']}", "X-Tocsin-Source": "cli"}
    inc = api.post(
        "/api/v1/incidents", json={"title": "x", "severity": "P1"}, headers=headers
    ).json()
    assert inc["created_by"] == "bob"
    assert inc["roles"] == {"commander": "bob"}
    first = api.get(f"/api/v1/incidents/{inc['id']}/timeline").json()["items"][0]
    assert (first["actor"], first["source"]) == ("bob", "cli")


def test_health_ready_metrics(api: TestClient) -> None:
    declare(api, severity="P0")
    assert api.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}
    assert api.get("/readyz", headers={"Authorization": ""}).json() == {"status": "ready"}
    text = api.get("/metrics", headers={"Authorization": ""}).text
    assert 'tocsin_open_incidents{severity="P0"} 1.0' in text
    assert 'tocsin_open_incidents{severity="P3"} 0.0' in text
    assert (
        'tocsin_http_requests_total{method="POST",route="/api/v1/incidents",status="201"}' in text
    )
    assert "tocsin_http_request_duration_seconds_bucket" in text


def test_openapi_lists_the_contract_routes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}",
        "/api/v1/incidents/{incident_id}/acknowledge",
        "/api/v1/incidents/{incident_id}/notes",
        "/api/v1/incidents/{incident_id}/timeline",
        "/api/monitoring/incidents",
        "/api/monitoring/incidents/{incident_id}",
    ):
        assert path in paths
