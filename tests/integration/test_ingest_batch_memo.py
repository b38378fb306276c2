"""One batch, many alerts: routing and group keys taken once per distinct value, never mixed up."""

from __future__ import annotations

from sqlalchemy import select

from tests.conftest import FakeClock, apply_yaml
from tocsin.ingest import alertmanager, pagerduty
from tocsin.services.alerting_config import IntegrationConfig, alerting_config
from tocsin.services.ingest import Delivery, ingest_many
from tocsin.storage.db import Database
from tocsin.storage.tables import AlertGroupRow, AlertRow

CONFIG = """
integrations:
  - {key: memo-pd-0001, type: pagerduty, service: database}
  - {key: memo-am-0001, type: alertmanager, service: api}
routes:
  - match: {flag: "true"}
    urgency: low
  - match: {tier: {regex: "gold|silver"}}
    urgency: low
grouping:
  - service: api
    by: [alertname, cluster]
"""


def _configured(db: Database, key: str) -> IntegrationConfig:
    """Apply CONFIG; return the integration `key` as ingest sees it."""
    apply_yaml(db, CONFIG)
    with db.read() as session:
        return alerting_config(session).integrations[key]


def _ingest(db: Database, deliveries: list[Delivery]) -> None:
    """Ingest the deliveries as one batch and commit."""
    with db.write() as session:
        ingest_many(session, deliveries)
        session.commit()


def _pd(key: str, details: dict[str, object]) -> dict[str, object]:
    return {
        "routing_key": "memo-pd-0001",
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {"summary": key, "source": "db", "severity": "error", "custom_details": details},
    }


def test_values_equal_in_python_but_not_to_a_matcher_route_apart(
    core_config: Database, clock: FakeClock
) -> None:
    """true, 1 and "true" are different to a matcher (true and 1 compare equal in Python)."""
    integration = _configured(core_config, "memo-pd-0001")
    events = {"bool": {"flag": True}, "int": {"flag": 1}, "text": {"flag": "true"}, "none": {}}
    signals = [pagerduty.parse_event(_pd(k, d), new_key=str) for k, d in events.items()]
    deliveries = [Delivery(integration, "pagerduty", "{}", clock(), (s,)) for s in signals]
    _ingest(core_config, deliveries)
    with core_config.read() as session:
        urgency = dict(session.execute(select(AlertRow.dedup_key, AlertRow.urgency)).all())
    assert urgency == {"bool": "low", "int": "high", "text": "low", "none": "high"}


def test_a_batch_of_alertmanager_alerts_routes_and_groups_each_by_its_own_labels(
    core_config: Database, clock: FakeClock
) -> None:
    integration = _configured(core_config, "memo-am-0001")
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": name, "cluster": cluster, "instance": f"i{n}", "tier": tier},
            "annotations": {"summary": f"{name} {n}"},
            "fingerprint": f"fp{n}",
        }
        for n, (name, cluster, tier) in enumerate(
            [(a, c, t) for a in ("Up", "Down") for c in ("c1", "c2") for t in ("gold", "iron")] * 3
        )
    ]
    body = {"version": "4", "status": "firing", "alerts": alerts}
    delivery = Delivery(integration, "alertmanager", "{}", clock(), tuple(alertmanager.parse(body)))
    _ingest(core_config, [delivery])
    with core_config.read() as session:
        rows = session.execute(select(AlertRow.labels, AlertRow.urgency, AlertRow.group_id)).all()
        group_keys = dict(session.execute(select(AlertGroupRow.id, AlertGroupRow.group_key)).all())
    assert len(rows) == 24
    assert len(group_keys) == 4
    for labels, urgency, group_id in rows:
        assert urgency == ("low" if labels["tier"] == "gold" else "high")
        assert labels["alertname"] in group_keys[group_id]
        assert labels["cluster"] in group_keys[group_id]
