"""A real PagerDuty client library (pdpyras) talks to a real `tocsin serve`: only its URL changes.

pdpyras's EventsAPISession and ChangeEventsAPISession are pointed at Tocsin by setting `url`
(their default is https://events.pagerduty.com); everything else is the library as shipped:
its request bodies, its checks of our answers, its errors. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import PD_KEY, alerting_server, get_json, items
from tests.e2e.serving import Server
from tocsin.api.alerts import mask_key

with warnings.catch_warnings():
    # pdpyras warns on import that its successor is the `pagerduty` package; it is still the
    # library most PagerDuty integrations in the wild use, so it is the one tested here.
    warnings.simplefilter("ignore", UserWarning)
    import pdpyras

pytestmark = pytest.mark.e2e

RUNBOOK = {"href": "https://runbooks.example/replica-lag", "text": "Runbook"}
GRAPH = {
    "src": "https://grafana.example/lag.png",
    "href": "https://grafana.example/d/1",
    "alt": "lag",
}


@pytest.fixture
def tocsin(db_url: str, tmp_path: Path) -> Iterator[Server]:
    with alerting_server(db_url, tmp_path) as server:
        yield server


def events(server: Server, routing_key: str = PD_KEY) -> pdpyras.EventsAPISession:
    session = pdpyras.EventsAPISession(routing_key)
    session.url = server.base
    return session


def changes(server: Server) -> pdpyras.ChangeEventsAPISession:
    session = pdpyras.ChangeEventsAPISession(PD_KEY)
    session.url = server.base
    return session


def alerts(server: Server, **params: Any) -> list[dict[str, Any]]:
    return items(server, "/api/v1/alerts", **params)


def test_trigger_dedup_acknowledge_resolve(tocsin: Server) -> None:
    with events(tocsin) as session:
        # trigger without a dedup key: Tocsin makes one and pdpyras returns it.
        key = session.trigger(
            "DB replica lag",
            "db-2",
            severity="error",
            payload={"component": "postgres", "group": "prod", "class": "replication"},
            custom_details={"lag_s": 42, "replica": "db-2"},
            images=[GRAPH],
            links=[RUNBOOK],
        )
        assert isinstance(key, str)
        assert key
        (alert,) = alerts(tocsin, dedup_key=key)
        assert alert["service"] == "database"
        assert alert["status"] == "firing"
        assert alert["title"] == "DB replica lag"
        assert alert["source"] == "db-2"
        assert alert["severity"] == "error"
        assert (alert["component"], alert["group"], alert["class"]) == (
            "postgres",
            "prod",
            "replication",
        )
        assert alert["details"]["custom_details"] == {"lag_s": 42, "replica": "db-2"}
        assert RUNBOOK in alert["links"]
        assert alert["images"] == [GRAPH]
        assert alert["event_count"] == 1

        # The same dedup key again adds to the same alert.
        again = session.trigger("DB replica lag worse", "db-2", dedup_key=key, severity="error")
        assert again == key
        (alert,) = alerts(tocsin, dedup_key=key)
        assert alert["event_count"] == 2
        assert alert["title"] == "DB replica lag worse"

        assert session.acknowledge(key) == key
        (alert,) = alerts(tocsin, dedup_key=key)
        assert alert["status"] == "acknowledged"
        assert alert["acknowledged_at"] is not None

        assert session.resolve(key) == key
        (alert,) = alerts(tocsin, dedup_key=key)
        assert alert["status"] == "resolved"
        assert alert["resolved_at"] is not None
        (group,) = items(tocsin, "/api/v1/alert-groups", dedup_key=key)
        assert group["status"] == "resolved"

        # Acknowledging or resolving a key Tocsin never saw is accepted (as PagerDuty does).
        assert session.acknowledge("never-seen-0001") == "never-seen-0001"
        assert session.resolve("never-seen-0001") == "never-seen-0001"
        assert alerts(tocsin, dedup_key="never-seen-0001") == []

        # pdpyras's default severity is critical: on Tocsin's routes that declares a P0.
        paged = session.trigger("Primary database down", "db-1", dedup_key="db-1-down")
        assert paged == "db-1-down"
        (group,) = items(tocsin, "/api/v1/alert-groups", dedup_key="db-1-down")
        assert group["incident_severity"] == "P0"
        assert group["incident_id"] is not None
        incident = get_json(tocsin, f"/api/v1/incidents/{group['incident_id']}")
        assert incident["severity"] == "P0"
    assert len(alerts(tocsin)) == 2


def test_change_events_are_recorded_and_page_nobody(tocsin: Server) -> None:
    deploy_link = {"href": "https://ci.example/builds/1234", "text": "Build 1234"}
    with changes(tocsin) as session:
        # The high-level call: pdpyras adds routing_key and a timestamp (with microseconds).
        before = datetime.now(UTC) - timedelta(seconds=5)
        session.submit(
            "Deployed db-migrations v42",
            source="ci",
            custom_details={"version": "v42", "by": "alice"},
            links=[deploy_link],
        )
        # The low-level call sends the body as given; routing_key is the caller's to add,
        # as it is against PagerDuty.
        session.send_change_event(
            routing_key=PD_KEY,
            payload={"summary": "Raised max_connections to 500", "source": "ansible"},
            links=[{"href": "https://git.example/infra/commit/abc", "text": "Commit"}],
        )
    found = items(tocsin, "/api/v1/change-events", service="database")
    assert [c["summary"] for c in found] == [
        "Raised max_connections to 500",
        "Deployed db-migrations v42",
    ]
    config_change, deploy = found
    assert deploy["service"] == "database"
    assert deploy["integration"] == mask_key(PD_KEY)  # a credential: never shown whole
    assert deploy["source"] == "ci"
    assert deploy["custom_details"] == {"version": "v42", "by": "alice"}
    assert deploy_link in deploy["links"]
    assert before <= datetime.fromisoformat(deploy["timestamp"]) <= datetime.now(UTC)
    assert config_change["source"] == "ansible"
    assert config_change["links"][0]["href"] == "https://git.example/infra/commit/abc"
    assert items(tocsin, "/api/v1/change-events", service="api") == []
    # A change event never opens an alert.
    assert alerts(tocsin) == []
    assert items(tocsin, "/api/v1/alert-groups") == []


def test_invalid_events_raise_the_library_error(tocsin: Server) -> None:
    with events(tocsin) as session:
        with pytest.raises(pdpyras.PDClientError) as bad_severity:
            session.trigger("Lag", "db-2", severity="fatal")
        response = bad_severity.value.response
        assert response is not None
        assert response.status_code == 400
        body = response.json()
        assert body["status"] == "invalid event"
        assert any("payload.severity" in error for error in body["errors"]), body

        with pytest.raises(pdpyras.PDClientError) as too_long:
            session.trigger("x" * 1025, "db-2", severity="error")
        assert too_long.value.response.status_code == 400

    with events(tocsin, routing_key="f" * 32) as unknown, pytest.raises(pdpyras.PDClientError):
        unknown.trigger("Lag", "db-2", severity="error")

    with changes(tocsin) as session, pytest.raises(pdpyras.PDClientError) as no_summary:
        session.send_change_event(routing_key=PD_KEY, payload={"source": "ci"})
    assert no_summary.value.response.status_code == 400
    assert alerts(tocsin) == []
    assert items(tocsin, "/api/v1/change-events") == []
