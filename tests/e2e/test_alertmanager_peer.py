"""A real Prometheus Alertmanager delivers to a real `tocsin serve` through its webhook receiver.

Alerts go in through Alertmanager's API v2 (as Prometheus sends them); what Tocsin made of the
webhooks Alertmanager sends is read back from Tocsin's API: Alertmanager's fingerprint is the
dedup key, re-sent alerts refire instead of duplicating, alerts group by [alertname, cluster],
a critical one declares a P0 incident, and resolving through Alertmanager resolves in Tocsin.
Runs on SQLite and PostgreSQL. Needs the Debian package prometheus-alertmanager.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import (
    AM_KEY,
    Alertmanager,
    alerting_server,
    get_json,
    items,
    require_binary,
    running_alertmanager,
    wait_until,
)
from tests.e2e.serving import Server
from tocsin.api.alerts import mask_key

pytestmark = pytest.mark.e2e

GENERATOR = "http://prometheus.example:9090/graph?g0.expr=latency"


@pytest.fixture
def alertmanager_binary() -> Path:
    return require_binary(
        ["prometheus-alertmanager", "alertmanager"],
        "prometheus-alertmanager",
        "TOCSIN_TEST_ALERTMANAGER",
    )


@pytest.fixture
def peers(
    alertmanager_binary: Path, db_url: str, tmp_path: Path
) -> Iterator[tuple[Server, Alertmanager]]:
    with alerting_server(db_url, tmp_path) as tocsin:
        webhook = f"{tocsin.base}/api/v1/ingest/{AM_KEY}"
        with running_alertmanager(alertmanager_binary, tmp_path, webhook) as am:
            yield tocsin, am


def rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def am_alert(name: str, *, severity: str, start: datetime, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager's API v2 (still firing: no endsAt)."""
    return {
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {
            "summary": f"{name} on {labels['cluster']}/{labels['instance']}",
            "runbook_url": f"https://runbooks.example/{name}",
        },
        "startsAt": rfc3339(start),
        "generatorURL": GENERATOR,
    }


def by_instance(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {alert["labels"]["instance"]: alert for alert in found}


def test_alertmanager_webhooks_dedup_group_page_and_resolve(
    peers: tuple[Server, Alertmanager],
) -> None:
    tocsin, am = peers
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    eu_a = am_alert("HighLatency", severity="error", start=start, cluster="eu", instance="a")
    eu_b = am_alert("HighLatency", severity="error", start=start, cluster="eu", instance="b")
    us_c = am_alert("HighLatency", severity="error", start=start, cluster="us", instance="c")
    down = am_alert("ApiDown", severity="critical", start=start, cluster="eu", instance="lb")

    # 1. Three alert groups in Alertmanager, so three webhooks.
    am.post_alerts([eu_a, us_c, down])

    def three() -> list[dict[str, Any]] | None:
        found = items(tocsin, "/api/v1/alerts", service="api")
        return found if len(found) >= 3 else None

    first = wait_until(three, "Tocsin to show the first 3 alerts Alertmanager sent")
    seen = by_instance(first)
    assert sorted(seen) == ["a", "c", "lb"], first
    fingerprints = {a["labels"]["instance"]: a["fingerprint"] for a in am.alerts()}
    for instance, alert in seen.items():
        # Alertmanager's fingerprint becomes the dedup key.
        assert alert["dedup_key"] == fingerprints[instance]
        assert alert["integration"] == mask_key(AM_KEY)  # a credential: never shown whole
        assert alert["status"] == "firing"
        assert alert["event_count"] == 1
        assert alert["source"] == instance  # the instance label
        assert datetime.fromisoformat(alert["starts_at"]) == start
    a = seen["a"]
    # Labels, annotations and generatorURL are kept.
    assert a["labels"] == eu_a["labels"]
    assert a["details"] == eu_a["annotations"]
    assert a["title"] == "HighLatency on eu/a"
    assert a["severity"] == "error"
    assert {"href": GENERATOR, "text": "Source"} in a["links"]
    assert any(link["href"] == am.base for link in a["links"]), a["links"]

    # The critical alert is routed to a high-urgency group with a P0 incident declared.
    page = get_json(tocsin, f"/api/v1/alert-groups/{seen['lb']['group_id']}")
    assert page["incident_severity"] == "P0"
    assert page["urgency"] == "high"
    assert page["incident_id"] is not None
    incident = get_json(tocsin, f"/api/v1/incidents/{page['incident_id']}")
    assert incident["severity"] == "P0"
    assert incident["services"] == ["api"]
    # Error-level alerts page nobody: no incident on their groups.
    for instance in ("a", "c"):
        group = get_json(tocsin, f"/api/v1/alert-groups/{seen[instance]['group_id']}")
        assert group["incident_id"] is None

    # 2. A new alert in the eu group: Alertmanager re-sends the whole group, [a, b].
    am.post_alerts([eu_b])

    def resent() -> list[dict[str, Any]] | None:
        found = items(tocsin, "/api/v1/alerts", service="api")
        mine = by_instance(found)
        return found if "b" in mine and mine["a"]["event_count"] >= 2 else None

    second = by_instance(wait_until(resent, "Alertmanager's re-send of the eu group"))
    # The re-sent alert refired in place: still one alert per fingerprint, four in all.
    assert sorted(second) == ["a", "b", "c", "lb"]
    assert len(items(tocsin, "/api/v1/alerts", service="api")) == 4
    assert [x["id"] for x in items(tocsin, "/api/v1/alerts", dedup_key=fingerprints["a"])] == [
        a["id"]
    ]
    assert second["a"]["status"] == "firing"
    assert second["c"]["event_count"] == 1  # the us group was not re-sent
    # Grouping by [alertname, cluster]: eu → one group of 2, us → another, ApiDown its own.
    eu_group = second["a"]["group_id"]
    assert second["b"]["group_id"] == eu_group
    assert len({eu_group, second["c"]["group_id"], second["lb"]["group_id"]}) == 3
    eu = get_json(tocsin, f"/api/v1/alert-groups/{eu_group}")
    assert eu["alert_count"] == 2
    assert sorted(x["labels"]["instance"] for x in eu["alerts"]) == ["a", "b"]
    assert eu["status"] == "firing"
    us = get_json(tocsin, f"/api/v1/alert-groups/{second['c']['group_id']}")
    assert us["alert_count"] == 1
    assert len(items(tocsin, "/api/v1/alert-groups", service="api")) == 3

    # 3. Resolve everything through Alertmanager: endsAt in the past.
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    am.post_alerts([alert | {"endsAt": rfc3339(ended)} for alert in (eu_a, eu_b, us_c, down)])

    def all_resolved() -> list[dict[str, Any]] | None:
        found = items(tocsin, "/api/v1/alerts", service="api")
        return found if all(x["status"] == "resolved" for x in found) else None

    resolved = by_instance(wait_until(all_resolved, "the resolved webhooks to resolve all 4"))
    assert sorted(resolved) == ["a", "b", "c", "lb"]  # resolving created nothing new
    for alert in resolved.values():
        assert alert["resolved_at"] is not None
        assert datetime.fromisoformat(alert["ends_at"]) == ended
    groups = items(tocsin, "/api/v1/alert-groups", service="api")
    assert len(groups) == 3
    assert {g["status"] for g in groups} == {"resolved"}
    assert {g["id"]: g["counts"] for g in groups}[eu_group] == {"resolved": 2}
