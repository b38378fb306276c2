"""Alerts in over HTTP: dedup, grouping, routing, noise control, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FakeClock

PD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
AM_URL = "/api/v1/ingest/am-production-0001"


def am_alert(name: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} on {labels.get('cluster', '?')}"},
        "startsAt": "2026-03-14T09:20:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-14T09:30:00Z",
        "generatorURL": "http://prometheus:9090/graph",
    }


def am_payload(*alerts: dict[str, Any], group_key: str = "{}:{}") -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "tocsin",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def pd_event(
    action: str = "trigger", dedup_key: str | None = None, **payload: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": PD_KEY, "event_action": action}
    if dedup_key:
        body["dedup_key"] = dedup_key
    if action == "trigger":
        body["payload"] = {
            "summary": "DB replica lag",
            "source": "db-2",
            "severity": "error",
            **payload,
        }
    return body


def groups(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    res = api.get("/api/v1/alert-groups", params=params)
    assert res.status_code == 200, res.text
    items: list[dict[str, Any]] = res.json()["items"]
    return items


def alerts(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    res = api.get("/api/v1/alerts", params=params)
    assert res.status_code == 200, res.text
    items: list[dict[str, Any]] = res.json()["items"]
    return items


# --- Alertmanager ---


def test_alertmanager_groups_by_configured_labels_and_resolves(alerting_api: TestClient) -> None:
    api = alerting_api
    res = api.post(
        AM_URL,
        json=am_payload(
            am_alert("HighLatency", cluster="eu", instance="a", severity="error"),
            am_alert("HighLatency", cluster="eu", instance="b", severity="error"),
            am_alert("HighLatency", cluster="us", instance="c", severity="error"),
        ),
    )
    assert res.status_code == 202, res.text
    found = groups(api, service="api")
    assert sorted(g["alert_count"] for g in found) == [1, 2]
    assert all(g["status"] == "firing" for g in found)
    # The same alerts again: deduplicated by label set (no fingerprint given), re-fired.
    api.post(AM_URL, json=am_payload(am_alert("HighLatency", cluster="eu", instance="a",
                                              severity="error")))  # fmt: skip
    assert len(alerts(api, service="api")) == 3
    refired = alerts(api, label=["instance=a"])
    assert refired[0]["event_count"] == 2
    # Resolve both eu alerts: their group resolves; us stays firing.
    api.post(
        AM_URL,
        json=am_payload(
            am_alert("HighLatency", "resolved", cluster="eu", instance="a", severity="error"),
            am_alert("HighLatency", "resolved", cluster="eu", instance="b", severity="error"),
        ),
    )
    statuses = {g["alert_count"]: g["status"] for g in groups(api, service="api")}
    assert statuses == {2: "resolved", 1: "firing"}
    assert {a["status"] for a in alerts(api, label=["cluster=eu"])} == {"resolved"}


def test_alertmanager_fingerprint_dedups_and_history_is_kept(alerting_api: TestClient) -> None:
    api = alerting_api
    alert = am_alert("Disk", cluster="eu", severity="error") | {"fingerprint": "abc123"}
    api.post(AM_URL, json=am_payload(alert))
    api.post(AM_URL, json=am_payload(alert | {"labels": {"alertname": "Disk", "x": "y"}}))
    (only,) = alerts(api, dedup_key="abc123")
    detail = api.get(f"/api/v1/alerts/{only['id']}").json()
    assert [h["kind"] for h in detail["history"]] == ["fired", "refired"]
    raw = api.get(f"/api/v1/alert-payloads/{detail['history'][0]['payload_id']}").json()
    assert '"abc123"' in raw["body"]


def test_critical_declares_an_incident_and_warning_is_low_urgency(
    alerting_api: TestClient,
) -> None:
    api = alerting_api
    api.post(AM_URL, json=am_payload(am_alert("ApiDown", cluster="eu", severity="critical")))
    (group,) = groups(api, service="api")
    assert group["incident_id"] is not None
    assert group["incident_severity"] == "P0"
    incident = api.get(f"/api/v1/incidents/{group['incident_id']}").json()
    assert incident["severity"] == "P0"
    assert incident["services"] == ["api"]
    api.post(AM_URL, json=am_payload(am_alert("SlowDisk", cluster="us", severity="warning")))
    warning = next(g for g in groups(api) if g["title"].startswith("SlowDisk"))
    assert warning["urgency"] == "low"
    assert warning["incident_id"] is None


def test_silence_from_config_suppresses_matching_alerts(alerting_api: TestClient) -> None:
    api = alerting_api
    api.post(AM_URL, json=am_payload(am_alert("DiskSpaceLow", env="staging", cluster="s")))
    (alert,) = alerts(api, label=["alertname=DiskSpaceLow"])
    assert alert["status"] == "suppressed"
    assert alert["suppressed_by"].startswith("silence:")
    assert groups(api, status=["suppressed"])[0]["alert_count"] == 1


def test_alike_alerts_of_one_payload_are_suppressed_by_their_own_fields(
    alerting_api: TestClient,
) -> None:
    # A batch decides suppression once per distinct value of the fields silences and inhibit
    # rules read: alerts differing only in such a field must still be told apart.
    api = alerting_api
    api.post(
        AM_URL,
        json=am_payload(
            am_alert("DiskSpaceLow", env="staging", cluster="s", instance="a"),
            am_alert("DiskSpaceLow", env="prod", cluster="s", instance="b"),
            am_alert("DiskSpaceLow", env="staging", cluster="s", instance="c"),
            am_alert("ClusterDown", cluster="eu", severity="error"),
            am_alert("Slow", cluster="eu", severity="warning"),
            am_alert("Slow", cluster="us", severity="warning"),
            am_alert("Slow", cluster="eu", severity="info"),
        ),
    )
    disks = {
        a["labels"]["instance"]: a["status"] for a in alerts(api, label=["alertname=DiskSpaceLow"])
    }
    assert disks == {"a": "suppressed", "b": "firing", "c": "suppressed"}
    slow = {
        (a["labels"]["cluster"], a["labels"]["severity"]): a["status"]
        for a in alerts(api, label=["alertname=Slow"])
    }
    assert slow == {
        ("eu", "warning"): "suppressed",
        ("us", "warning"): "firing",
        ("eu", "info"): "firing",
    }


def test_inhibition_suppresses_warnings_of_a_down_cluster(alerting_api: TestClient) -> None:
    api = alerting_api
    api.post(AM_URL, json=am_payload(am_alert("ClusterDown", cluster="eu", severity="error")))
    api.post(
        AM_URL,
        json=am_payload(
            am_alert("Slow", cluster="eu", severity="warning"),
            am_alert("Slow", cluster="us", severity="warning"),
        ),
    )
    by_cluster = {
        a["labels"]["cluster"]: a["status"] for a in alerts(api, label=["alertname=Slow"])
    }
    assert by_cluster == {"eu": "suppressed", "us": "firing"}


def test_inhibition_follows_its_source_from_batch_to_batch(alerting_api: TestClient) -> None:
    # Stored sources are remembered for a second between batches (services/inhibit_sources):
    # a batch that fires or resolves a source must still be seen by the very next one.
    api = alerting_api

    def slow(instance: str) -> str:
        api.post(
            AM_URL,
            json=am_payload(am_alert("Slow", cluster="eu", severity="warning", instance=instance)),
        )
        (alert,) = alerts(api, label=["alertname=Slow", f"instance={instance}"])
        return str(alert["status"])

    assert slow("a") == "firing"  # no source yet: the (empty) sources are now remembered
    api.post(AM_URL, json=am_payload(am_alert("ClusterDown", cluster="eu", severity="error")))
    assert slow("b") == "suppressed"
    api.post(
        AM_URL,
        json=am_payload(am_alert("ClusterDown", "resolved", cluster="eu", severity="error")),
    )
    assert slow("c") == "firing"
    api.post(AM_URL, json=am_payload(am_alert("ClusterDown", cluster="eu", severity="error")))
    assert slow("d") == "suppressed"
    (down,) = groups(api, label=["alertname=ClusterDown"], status=["firing"])
    assert api.post(f"/api/v1/alert-groups/{down['id']}/resolve").status_code == 200
    assert slow("e") == "firing"


def test_maintenance_window_suppresses_its_service(alerting_api: TestClient) -> None:
    api = alerting_api
    res = api.post("/api/v1/maintenance-windows", json={"service": "database", "duration": "2h"})
    assert res.status_code == 201, res.text
    api.post("/v2/enqueue", json=pd_event(dedup_key="m1"))
    (alert,) = alerts(api, dedup_key="m1")
    assert alert["status"] == "suppressed"
    assert alert["suppressed_by"].startswith("maintenance:")


# --- PagerDuty Events API v2 ---


def test_a_group_status_follows_its_alerts_batch_after_batch(alerting_api: TestClient) -> None:
    # A live group that only gains alerts keeps its status without a count of its alerts;
    # a resolved or acknowledged alert makes the batch count them.
    api = alerting_api

    def send(*alerts: dict[str, Any]) -> str:
        assert api.post(AM_URL, json=am_payload(*alerts)).status_code == 202
        (group,) = groups(api, service="api")
        return str(group["status"])

    def slow(instance: str, status: str = "firing") -> dict[str, Any]:
        return am_alert("Slow", status, cluster="eu", instance=instance, severity="error")

    assert send(slow("a"), slow("b")) == "firing"
    assert send(slow("a", "resolved")) == "firing"
    assert send(slow("c")) == "firing"
    group_id = groups(api, service="api")[0]["id"]
    assert api.post(f"/api/v1/alert-groups/{group_id}/acknowledge").status_code == 200
    assert send(slow("d")) == "acknowledged"
    assert send(slow("b", "resolved"), slow("c", "resolved")) == "acknowledged"
    assert send(slow("d", "resolved")) == "resolved"


def test_pagerduty_trigger_dedup_ack_resolve_and_retrigger(alerting_api: TestClient) -> None:
    api = alerting_api
    res = api.post("/v2/enqueue", json=pd_event())
    assert res.status_code == 202
    body = res.json()
    assert body["status"] == "success"
    assert body["message"] == "Event processed"
    key = body["dedup_key"]
    again = api.post("/v2/enqueue", json=pd_event(dedup_key=key, summary="lag worse"))
    assert again.json()["dedup_key"] == key
    (alert,) = alerts(api, dedup_key=key)
    assert alert["event_count"] == 2
    assert alert["title"] == "lag worse"
    api.post("/v2/enqueue", json=pd_event("acknowledge", key))
    assert alerts(api, dedup_key=key)[0]["status"] == "acknowledged"
    api.post("/v2/enqueue", json=pd_event("resolve", key))
    assert alerts(api, dedup_key=key)[0]["status"] == "resolved"
    assert groups(api, dedup_key=key)[0]["status"] == "resolved"
    # A trigger after resolve opens a new alert.
    api.post("/v2/enqueue", json=pd_event(dedup_key=key))
    assert [a["status"] for a in alerts(api, dedup_key=key)] == ["firing", "resolved"]


def test_pagerduty_ack_or_resolve_of_unknown_key_is_accepted_and_dropped(
    alerting_api: TestClient,
) -> None:
    api = alerting_api
    for action in ("acknowledge", "resolve"):
        res = api.post("/v2/enqueue", json=pd_event(action, "never-seen"))
        assert res.status_code == 202
        assert res.json()["dedup_key"] == "never-seen"
    assert alerts(api) == []


def test_pagerduty_keeps_links_images_and_details(alerting_api: TestClient) -> None:
    api = alerting_api
    event = pd_event(dedup_key="d1", component="postgres", group="prod",
                     custom_details={"lag_s": 42}, **{"class": "replication"})  # fmt: skip
    event["links"] = [{"href": "https://runbook.example/lag", "text": "Runbook"}]
    event["images"] = [{"src": "https://img.example/lag.png", "alt": "lag"}]
    assert api.post("/v2/enqueue", json=event).status_code == 202
    (alert,) = alerts(api, dedup_key="d1")
    assert alert["component"] == "postgres"
    assert alert["group"] == "prod"
    assert alert["class"] == "replication"
    assert {"href": "https://runbook.example/lag", "text": "Runbook"} in alert["links"]
    assert alert["images"][0]["src"] == "https://img.example/lag.png"
    assert alert["details"]["custom_details"] == {"lag_s": 42}


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda e: e["payload"].pop("summary"), "payload.summary"),
        (lambda e: e["payload"].update(severity="fatal"), "payload.severity"),
        (lambda e: e["payload"].pop("source"), "payload.source"),
        (lambda e: e["payload"].update(summary="x" * 1025), "payload.summary"),
        (lambda e: e.update(dedup_key="k" * 256), "dedup_key"),
        (lambda e: e.update(event_action="explode"), "event_action"),
    ],
)
def test_pagerduty_invalid_events_get_pagerduty_errors(
    alerting_api: TestClient, mutate: Any, needle: str
) -> None:
    event = pd_event()
    mutate(event)
    res = alerting_api.post("/v2/enqueue", json=event)
    assert res.status_code == 400
    body = res.json()
    assert body["status"] == "invalid event"
    assert any(needle in error for error in body["errors"]), body


def test_bad_input_is_a_clear_error(alerting_api: TestClient) -> None:
    api = alerting_api
    assert api.post("/api/v1/ingest/nope", json=am_payload()).status_code == 404
    bad = api.post(AM_URL, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["detail"] == "Malformed JSON"
    wrong = api.post(AM_URL, json={"alerts": "many"})
    assert wrong.status_code == 400
    assert wrong.json()["errors"]
    unknown = api.post("/v2/enqueue", json=pd_event() | {"routing_key": "x" * 32})
    assert unknown.status_code == 404
    big = api.post("/v2/enqueue", content=b" " * (600 * 1024))
    assert big.status_code == 413
    # Refused payloads are kept, with why.
    refused = api.get("/api/v1/alert-payloads").json()
    assert {r["format"] for r in refused} >= {"alertmanager"}


def test_json_is_read_exactly_as_the_standard_says(alerting_api: TestClient) -> None:
    # Bodies are read with orjson, falling back to the standard library where they differ:
    # integers beyond 64 bits stay exact, NaN is refused, UTF-8 text is read as such.
    api = alerting_api
    huge = 123456789012345678901234567890
    event = pd_event(dedup_key="huge", custom_details={"n": huge, "small": 7})
    assert api.post("/v2/enqueue", json=event).status_code == 202
    (alert,) = alerts(api, dedup_key="huge")
    assert alert["details"]["custom_details"] == {"n": huge, "small": 7}
    nan = b'{"routing_key": "%s", "event_action": "trigger", "x": NaN}' % PD_KEY.encode()
    refused = api.post("/v2/enqueue", content=nan, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400
    accented = json.dumps(am_payload(am_alert("Accented", cluster="é")), ensure_ascii=False)
    sent = api.post(AM_URL, content=accented.encode(), headers={"Content-Type": "application/json"})
    assert sent.status_code == 202, sent.text
    assert alerts(api, label=["alertname=Accented"])[0]["labels"]["cluster"] == "é"


def test_change_events_are_recorded_and_never_page(alerting_api: TestClient) -> None:
    api = alerting_api
    res = api.post(
        "/v2/change/enqueue",
        json={"routing_key": PD_KEY, "payload": {"summary": "Deployed v1.2.3", "source": "ci"},
              "links": [{"href": "https://ci.example/1", "text": "Build"}]},
    )  # fmt: skip
    assert res.status_code == 202, res.text
    (change,) = api.get("/api/v1/change-events", params={"service": "database"}).json()["items"]
    assert change["summary"] == "Deployed v1.2.3"
    assert alerts(api) == []
    timeline = api.get("/api/v1/services/database/timeline").json()["items"]
    assert [(i["kind"], i["title"]) for i in timeline] == [("change", "Deployed v1.2.3")]
    assert api.get("/api/v1/services/nope/timeline").status_code == 422


def test_grafana_alerts_keep_values_and_links(alerting_api: TestClient) -> None:
    api = alerting_api
    body = {
        "receiver": "tocsin", "status": "firing", "orgId": 1, "version": "1",
        "groupKey": "{}/{}:{alertname=\"CPU\"}", "title": "[FIRING:1] CPU", "state": "alerting",
        "message": "CPU high", "truncatedAlerts": 0, "externalURL": "http://grafana:3000/",
        "groupLabels": {"alertname": "CPU"}, "commonLabels": {}, "commonAnnotations": {},
        "alerts": [{
            "status": "firing", "labels": {"alertname": "CPU", "cluster": "eu"},
            "annotations": {"summary": "CPU above 90%"}, "startsAt": "2026-03-14T09:20:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://grafana:3000/alerting/1",
            "fingerprint": "f00d", "silenceURL": "http://grafana:3000/alerting/silence/new",
            "dashboardURL": "http://grafana:3000/d/abc", "panelURL": "http://grafana:3000/d/abc?viewPanel=2",
            "values": {"B": 93.5}, "valueString": "[ var='B' value=93.5 ]",
        }],
    }  # fmt: skip
    res = api.post("/api/v1/ingest/grafana-main-0001", json=body)
    assert res.status_code == 202, res.text
    (alert,) = alerts(api, dedup_key="f00d")
    assert alert["title"] == "CPU above 90%"
    assert alert["details"]["value"] == 93.5
    assert {link["text"] for link in alert["links"]} >= {"Dashboard", "Panel", "Silence"}


# --- generic webhook, dry run ---


def test_generic_mapping_fires_and_resolves(alerting_api: TestClient) -> None:
    api = alerting_api
    url = "/api/v1/ingest/uptime-generic-0001"
    assert api.post(url, json={"check": "homepage", "state": "down"}).status_code == 202
    (alert,) = alerts(api, dedup_key="homepage")
    assert alert["title"] == "homepage is down"
    assert alert["severity"] == "error"
    assert alert["status"] == "firing"
    api.post(url, json={"check": "homepage", "state": "up"})
    assert alerts(api, dedup_key="homepage")[0]["status"] == "resolved"


def test_alert_groups_filter_by_incident(alerting_api: TestClient) -> None:
    api = alerting_api
    api.post(AM_URL, json=am_payload(am_alert("ApiDown", cluster="eu", severity="critical")))
    api.post(AM_URL, json=am_payload(am_alert("Other", cluster="eu", severity="error")))
    (declared,) = [g for g in groups(api) if g["incident_id"]]
    linked = groups(api, incident=declared["incident_id"])
    assert [g["id"] for g in linked] == [declared["id"]]


def test_dry_run_shows_what_a_payload_would_become(alerting_api: TestClient) -> None:
    api = alerting_api
    res = api.post(
        "/api/v1/integrations/uptime-generic-0001/dry-run",
        json={"check": "db", "state": "down", "level": "critical"},
    )
    assert res.status_code == 200, res.text
    (alert,) = res.json()["alerts"]
    assert alert["title"] == "db is down"
    assert alert["severity"] == "critical"
    assert alerts(api) == []


# --- responders act on groups ---


def test_group_acknowledge_resolve_silence_declare_merge(
    alerting_api: TestClient, clock: FakeClock
) -> None:
    api = alerting_api
    api.post("/v2/enqueue", json=pd_event(dedup_key="g1"))
    (group,) = groups(api, dedup_key="g1")
    acked = api.post(f"/api/v1/alert-groups/{group['id']}/acknowledge").json()
    assert acked["status"] == "acknowledged"
    assert acked["alerts"][0]["status"] == "acknowledged"
    declared = api.post(f"/api/v1/alert-groups/{group['id']}/declare", json={"severity": "P2"})
    assert declared.status_code == 201, declared.text
    incident_id = declared.json()["incident_id"]
    timeline = api.get(f"/api/v1/incidents/{incident_id}/timeline").json()["items"]
    assert "alert_group_linked" in [e["kind"] for e in timeline]
    again = api.post(f"/api/v1/alert-groups/{group['id']}/declare", json={})
    assert again.status_code == 422
    resolved = api.post(f"/api/v1/alert-groups/{group['id']}/resolve").json()
    assert resolved["status"] == "resolved"
    # Merge a second group into that incident; silence a third.
    api.post("/v2/enqueue", json=pd_event(dedup_key="g2"))
    (second,) = groups(api, dedup_key="g2")
    merged = api.post(f"/api/v1/alert-groups/{second['id']}/merge",
                      json={"incident": f"INC-{incident_id}"})  # fmt: skip
    assert merged.json()["incident_id"] == incident_id
    api.post(AM_URL, json=am_payload(am_alert("Noisy", cluster="eu", severity="error")))
    (third,) = groups(api, label=["alertname=Noisy"])
    silenced = api.post(f"/api/v1/alert-groups/{third['id']}/silence", json={"duration": "1h"})
    assert silenced.status_code == 200, silenced.text
    assert silenced.json()["status"] == "suppressed"
    # New Noisy alerts are silenced while the silence lasts.
    api.post(AM_URL, json=am_payload(am_alert("Noisy", cluster="eu", instance="z",
                                              severity="error")))  # fmt: skip
    assert {a["status"] for a in alerts(api, label=["alertname=Noisy"])} == {"suppressed"}
    (silence,) = [s for s in api.get("/api/v1/silences").json()["items"] if not s["from_config"]]
    assert api.delete(f"/api/v1/silences/{silence['id']}").json()["active"] is False


def test_silences_api_validates(alerting_api: TestClient) -> None:
    api = alerting_api
    res = api.post("/api/v1/silences", json={"matchers": {"x": {"bogus": 1}}, "duration": "1h"})
    assert res.status_code == 422
    res = api.post("/api/v1/silences", json={"matchers": {}, "duration": "1h"})
    assert res.status_code == 422
    res = api.post("/api/v1/silences", json={"matchers": {"a": "b"}})
    assert res.status_code == 422


# --- heartbeats, rate limit ---


def test_heartbeat_ping_and_missed_ping_alert(alerting_api: TestClient, clock: FakeClock) -> None:
    from tocsin.engine.modules import HeartbeatModule

    api = alerting_api
    db = api.app.state.ctx.db  # type: ignore[attr-defined]
    assert api.get("/api/v1/heartbeats/nightly-backup-0001").status_code == 200
    assert api.post("/api/v1/heartbeats/unknown").status_code == 404
    module = HeartbeatModule()
    with db.write() as session:
        due = module.update(session, clock())
        session.commit()
    assert due is not None
    assert alerts(api) == []
    clock.advance(hours=26)
    with db.write() as session:
        module.update(session, clock())
        session.commit()
    (missed,) = alerts(api)
    assert missed["title"] == "Heartbeat missed: Nightly backup"
    assert missed["service"] == "database"
    # Running again does not raise a second alert.
    with db.write() as session:
        module.update(session, clock())
        session.commit()
    assert len(alerts(api)) == 1
    res = api.post("/api/v1/heartbeats/nightly-backup-0001")
    assert res.json()["recovered"] is True
    assert alerts(api)[0]["status"] == "resolved"


def test_rate_limit_answers_429_with_retry_after(
    alerting_api: TestClient, make_settings: Any, core_config: Any, clock: FakeClock
) -> None:
    from fastapi.testclient import TestClient as Client

    from tests.conftest import ADMIN_TOKEN
    from tocsin.api.app import create_app

    settings = make_settings(core_config.url, ingest_rate_limit="2/m")
    with Client(create_app(settings, core_config, clock),
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:  # fmt: skip
        codes = [client.post("/v2/enqueue", json=pd_event()).status_code for _ in range(4)]
        assert codes[:2] == [202, 202]
        assert codes[2] == 429
        limited = client.post("/v2/enqueue", json=pd_event())
        assert int(limited.headers["Retry-After"]) >= 1
        change = {"routing_key": PD_KEY, "payload": {"summary": "deploy", "source": "ci"}}
        assert client.post("/v2/change/enqueue", json=change).status_code == 429


def test_integration_keys_are_masked_for_readers(alerting_api: TestClient) -> None:
    api = alerting_api
    api.post("/v2/enqueue", json=pd_event(dedup_key="secret-check"))
    (alert,) = alerts(api, dedup_key="secret-check")
    assert alert["integration"] == "0f1e…f0"
    token = api.post("/api/v1/tokens", json={"name": "reader", "scopes": ["read"]})
    assert token.status_code == 201, token.text
    reader = {"Authorization": f"Bearer {token.json()['token']}"}
    payload_id = api.get(f"/api/v1/alerts/{alert['id']}").json()["history"][0]["payload_id"]
    seen = api.get(f"/api/v1/alert-payloads/{payload_id}", headers=reader).json()
    assert PD_KEY not in seen["body"]
    assert "nightly-backup-0001" not in api.get("/api/v1/heartbeats", headers=reader).text
    admin = api.get(f"/api/v1/alert-payloads/{payload_id}").json()
    assert PD_KEY in admin["body"]
