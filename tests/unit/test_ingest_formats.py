"""The ingest parsers: real payloads from each source, every validation error, and fuzzing.

The property tests feed arbitrary JSON and near-valid payloads (a real payload with fields
swapped for wrong types, huge strings, odd numbers or nothing) to every parser: the only
failure a parser may show a sender is PayloadError, never a 500.
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import BaseAdapter

from tocsin.core.alerts import Action, ChangeEvent, Image, Link, Signal, label_set_key
from tocsin.ingest import alertmanager, grafana, pagerduty
from tocsin.ingest.errors import PayloadError
from tocsin.ingest.generic import GenericMapping, compile_mapping

# --- realistic payloads ---

ALERTMANAGER: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="HighLatency"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "tocsin",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency", "job": "api", "severity": "critical"},
    "commonAnnotations": {"runbook_url": "https://runbooks.example/latency"},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighLatency",
                "instance": "api-1:9090",
                "job": "api",
                "severity": "critical",
            },
            "annotations": {
                "summary": "p99 latency above 2s on api-1",
                "runbook_url": "https://runbooks.example/latency",
            },
            "startsAt": "2024-05-01T12:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=latency",
            "fingerprint": "c4f1d2a3b4e5f607",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "HighLatency", "job": "api", "severity": "critical"},
            "annotations": {},
            "startsAt": "2024-05-01T11:00:00+02:00",
            "endsAt": "2024-05-01T12:10:00.5+02:00",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=latency",
            "fingerprint": "0a1b2c3d4e5f6071",
        },
    ],
}

GRAFANA: dict[str, Any] = {
    "receiver": "tocsin",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?matcher=zone%3Dus-1",
            "dashboardURL": "https://play.grafana.org/d/abc",
            "panelURL": "https://play.grafana.org/d/abc?viewPanel=2",
            "imageURL": "https://play.grafana.org/render/abc.png",
            "values": {"B": 44.23, "C": 1},
            "valueString": "[ var='B' value=44.23 ], [ var='C' value=1 ]",
        }
    ],
    "groupLabels": {},
    "commonLabels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": '{}:{alertname="High memory usage"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:1]  (High memory usage blue us-1)",
    "state": "alerting",
    "message": "**Firing**\n\nValue: B=44.23, C=1",
}

GRAFANA_LEGACY: dict[str, Any] = {
    "dashboardId": 1,
    "evalMatches": [{"value": 100, "metric": "High value", "tags": None}],
    "imageUrl": "https://grafana.com/assets/img/blog/mixed_styles.png",
    "message": "Notification Message",
    "orgId": 1,
    "panelId": 2,
    "ruleId": 1,
    "ruleName": "Panel Title alert",
    "ruleUrl": "http://localhost:3000/d/hZ7BuVbWz/test-dashboard?fullscreen&edit&tab=alert",
    "state": "alerting",
    "tags": {"tag name": "tag value"},
    "title": "[Alerting] Panel Title alert",
}

ROUTING_KEY = "R0123456789abcdef0123456789abcde"
PD_TRIGGER: dict[str, Any] = {
    "routing_key": ROUTING_KEY,
    "event_action": "trigger",
    "dedup_key": "disk/db-1",
    "payload": {
        "summary": "Disk almost full on db-1",
        "source": "db-1.example",
        "severity": "warning",
        "timestamp": "2015-07-17T08:42:58.315+0000",
        "component": "postgres",
        "group": "prod-datapipe",
        "class": "disk",
        "custom_details": {"free_percent": 3, "mount": "/var", "nested": {"a": [1, 2]}},
    },
    "images": [{"src": "https://chart.example/d.png", "href": "https://x.example", "alt": "d"}],
    "links": [{"href": "https://wiki.example/disk", "text": "Runbook"}],
    "client": "Sample Monitoring Service",
    "client_url": "https://monitoring.example.com",
}
PD_CHANGE: dict[str, Any] = {
    "routing_key": ROUTING_KEY,
    "payload": {
        "summary": "Build Success: Increase snapshot create timeout to 30 seconds",
        "timestamp": "2020-07-17T08:42:58.315+00:00",
        "source": "acme-build-pipeline-tool-default-i-9999",
        "custom_details": {"build_state": "passed", "build_number": "2"},
    },
    "links": [{"href": "https://acme.pagerduty.dev/build/2", "text": "View more details"}],
}

GENERIC_EXAMPLE = yaml.safe_load(
    """
mapping:
  title: "{{ body.check }} is {{ body.state }}"
  dedup_key: "{{ body.check }}"
  status: "{{ 'resolved' if body.state == 'up' else 'firing' }}"
  severity: "{{ body.level | default('error') }}"
"""
)["mapping"]


def fresh_key() -> str:
    return "generated-key"


# --- Alertmanager ---


def test_alertmanager_full_payload() -> None:
    firing, resolved = alertmanager.parse(ALERTMANAGER)
    assert firing == Signal(
        action=Action.TRIGGER,
        dedup_key="c4f1d2a3b4e5f607",
        title="p99 latency above 2s on api-1",
        severity="critical",
        source="api-1:9090",
        labels=ALERTMANAGER["alerts"][0]["labels"],
        details=ALERTMANAGER["alerts"][0]["annotations"],
        links=(
            Link("http://prometheus.example:9090/graph?g0.expr=latency", "Source"),
            Link("http://alertmanager.example:9093", "Alertmanager"),
        ),
        starts_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        ends_at=None,
        group_key='{}/{severity="critical"}:{alertname="HighLatency"}',
    )
    assert resolved.action is Action.RESOLVE
    assert resolved.title == "HighLatency"  # no summary: the alert name
    assert resolved.source == "api"  # no instance: the job
    assert resolved.starts_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert resolved.ends_at == datetime(2024, 5, 1, 10, 10, 0, 500000, tzinfo=UTC)


def test_alertmanager_sparse_payload() -> None:
    labels = {"alertname": "Down", "service": "db"}
    [signal] = alertmanager.parse({"alerts": [{"labels": labels}]})
    assert signal.action is Action.TRIGGER
    assert signal.dedup_key == label_set_key(labels)
    assert signal.title == "Down"
    assert signal.source is None
    assert signal.details == {}
    assert signal.links == ()
    assert signal.starts_at is None
    assert signal.group_key is None


def test_alertmanager_alert_without_status_takes_the_group_status() -> None:
    [signal] = alertmanager.parse({"status": "resolved", "alerts": [{"labels": {"a": "b"}}]})
    assert signal.action is Action.RESOLVE


def test_alertmanager_empty_alerts_and_defaults() -> None:
    assert alertmanager.parse({"alerts": []}) == []
    [signal] = alertmanager.parse({"receiver": "team-db", "alerts": [{}]})
    assert signal.title == "Alert"
    assert signal.source == "team-db"
    assert signal.dedup_key == label_set_key({})


def test_alertmanager_title_prefers_summary_then_title_and_is_truncated() -> None:
    alert = {"labels": {"alertname": "A"}, "annotations": {"title": "T" * 2000}}
    [signal] = alertmanager.parse({"alerts": [alert]})
    assert signal.title == "T" * 1024


def test_alertmanager_coerces_scalar_labels_and_rejects_nested_ones() -> None:
    alert = {"labels": {"code": 500, "up": False, "ratio": 0.5, "whole": 2.0, "gone": None}}
    [signal] = alertmanager.parse({"alerts": [alert]})
    assert signal.labels == {"code": "500", "up": "false", "ratio": "0.5", "whole": "2"}
    with pytest.raises(PayloadError) as info:
        alertmanager.parse({"alerts": [{"labels": {"ok": "x", "bad": {"a": 1}}}, {"labels": []}]})
    assert info.value.errors == [
        "alerts[0].labels.bad: expected a string, got an object",
        "alerts[1].labels: expected an object, got a list",
    ]


def test_alertmanager_times() -> None:
    def starts(text: str) -> datetime | None:
        [signal] = alertmanager.parse({"alerts": [{"startsAt": text}]})
        return signal.starts_at

    assert starts("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert starts("2024-05-01T12:00:00.1Z") == datetime(2024, 5, 1, 12, 0, 0, 100000, tzinfo=UTC)
    assert starts("2024-05-01t12:00:00-05:30") == datetime(2024, 5, 1, 17, 30, tzinfo=UTC)
    assert starts("0001-01-01T00:00:00Z") is None
    assert starts("") is None
    for bad in (
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-05-01T12:00:00+24:00",
        "0000-01-01T00:00:00Z",
    ):
        with pytest.raises(PayloadError) as info:
            starts(bad)
        assert info.value.errors[0].startswith("alerts[0].startsAt: ")


def test_alertmanager_long_dedup_key_is_hashed() -> None:
    [signal] = alertmanager.parse({"alerts": [{"fingerprint": "f" * 300}]})
    assert signal.dedup_key.startswith("sha256:")
    assert len(signal.dedup_key) <= 255


def test_alertmanager_drops_links_that_are_not_http() -> None:
    alert = {"generatorURL": "javascript:alert(1)"}
    [signal] = alertmanager.parse({"externalURL": "data:text/html,x", "alerts": [alert]})
    assert signal.links == ()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "body: expected an object, got a list"),
        ({}, "alerts: expected a list, got null"),
        ({"alerts": {}}, "alerts: expected a list, got an object"),
        ({"alerts": [1]}, "alerts[0]: expected an object, got a number"),
        (
            {"alerts": [{"fingerprint": 7}]},
            "alerts[0].fingerprint: expected a string, got a number",
        ),
        ({"alerts": [{"labels": {"n": 10**5000}}]}, "alerts[0].labels.n: number is too large"),
    ],
)
def test_alertmanager_errors_name_the_field(body: object, error: str) -> None:
    with pytest.raises(PayloadError) as info:
        alertmanager.parse(body)
    assert info.value.errors == [error]


def test_alertmanager_cleans_text_no_database_can_store() -> None:
    [signal] = alertmanager.parse({"alerts": [{"labels": {"alertname": "a\ud800b\x00c"}}]})
    assert signal.title == "a\ufffdb\ufffdc"


# --- Grafana ---


def test_grafana_unified_alerting_payload() -> None:
    [signal] = grafana.parse(GRAFANA)
    assert signal.action is Action.TRIGGER
    assert signal.dedup_key == "c6eadffa33fcdf37"
    assert signal.title == "This alert was triggered for zone us-1"
    assert signal.starts_at == datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)
    assert signal.details == {
        **GRAFANA["alerts"][0]["annotations"],
        "values": {"B": 44.23, "C": 1.0},
        "valueString": "[ var='B' value=44.23 ], [ var='C' value=1 ]",
        "value_B": 44.23,
        "value_C": 1.0,
    }
    assert [link.text for link in signal.links] == [
        "Source",
        "Grafana",
        "Dashboard",
        "Panel",
        "Silence",
    ]
    assert signal.images == (Image("https://play.grafana.org/render/abc.png", alt=signal.title),)
    assert signal.group_key == '{}:{alertname="High memory usage"}'


def test_grafana_single_value_is_also_value_and_null_values_are_absent() -> None:
    [one] = grafana.parse({"alerts": [{"values": {"A": 3}}]})
    assert one.details == {"values": {"A": 3.0}, "value_A": 3.0, "value": 3.0}
    [none] = grafana.parse({"alerts": [{"values": None, "valueString": ""}]})
    assert none.details == {}


def test_grafana_rejects_values_that_are_not_numbers() -> None:
    with pytest.raises(PayloadError) as info:
        grafana.parse({"alerts": [{"values": {"A": "3", "B": True, "C": 10**400}}]})
    assert info.value.errors == [
        "alerts[0].values.A: expected a number, got a string",
        "alerts[0].values.B: expected a number, got a boolean",
        "alerts[0].values.C: number is out of range",
    ]


def test_grafana_legacy_payload() -> None:
    [signal] = grafana.parse(GRAFANA_LEGACY)
    assert signal.action is Action.TRIGGER
    assert signal.dedup_key == "1"
    assert signal.title == "[Alerting] Panel Title alert"
    assert signal.labels == {"tag name": "tag value"}
    assert signal.details["message"] == "Notification Message"
    assert signal.details["value"] == 100.0
    assert signal.links[0].text == "Grafana"
    [ok] = grafana.parse({**GRAFANA_LEGACY, "state": "ok", "ruleId": None})
    assert ok.action is Action.RESOLVE
    assert ok.dedup_key == "Panel Title alert"


def test_grafana_legacy_rule_id_beyond_64_bits_is_a_clear_error() -> None:
    # Found by hypothesis: str() of an integer of more than 4,300 digits raises ValueError.
    assert grafana.parse({**GRAFANA_LEGACY, "ruleId": 2**63 - 1})[0].dedup_key == str(2**63 - 1)
    with pytest.raises(PayloadError, match="ruleId"):
        grafana.parse({**GRAFANA_LEGACY, "ruleId": 10**5000})


# --- PagerDuty ---


def test_pagerduty_trigger_with_every_field() -> None:
    signal = pagerduty.parse_event(PD_TRIGGER, new_key=fresh_key)
    assert signal == Signal(
        action=Action.TRIGGER,
        dedup_key="disk/db-1",
        title="Disk almost full on db-1",
        severity="warning",
        source="db-1.example",
        details={
            "free_percent": 3,
            "mount": "/var",
            "custom_details": PD_TRIGGER["payload"]["custom_details"],
        },
        links=(
            Link("https://monitoring.example.com", "Sample Monitoring Service"),
            Link("https://wiki.example/disk", "Runbook"),
        ),
        images=(Image("https://chart.example/d.png", "https://x.example", "d"),),
        component="postgres",
        group="prod-datapipe",
        class_="disk",
        starts_at=datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC),
    )


def test_pagerduty_trigger_without_dedup_key_gets_a_new_one() -> None:
    body = {**PD_TRIGGER, "dedup_key": None, "payload": {**PD_TRIGGER["payload"]}}
    body["payload"].pop("custom_details")
    signal = pagerduty.parse_event(body, new_key=fresh_key)
    assert signal.dedup_key == "generated-key"
    assert signal.details == {}


def test_pagerduty_string_custom_details_are_kept() -> None:
    body = {**PD_TRIGGER, "payload": {**PD_TRIGGER["payload"], "custom_details": "free: 3%"}}
    assert pagerduty.parse_event(body, new_key=fresh_key).details == {"custom_details": "free: 3%"}


@pytest.mark.parametrize("action", [Action.ACKNOWLEDGE, Action.RESOLVE])
def test_pagerduty_acknowledge_and_resolve(action: Action) -> None:
    body = {"routing_key": ROUTING_KEY, "event_action": action.value, "dedup_key": "k"}
    signal = pagerduty.parse_event(body, new_key=fresh_key)
    assert (signal.action, signal.dedup_key, signal.title) == (action, "k", "")


def test_pagerduty_change_event() -> None:
    assert pagerduty.parse_change(PD_CHANGE) == ChangeEvent(
        summary="Build Success: Increase snapshot create timeout to 30 seconds",
        source="acme-build-pipeline-tool-default-i-9999",
        timestamp=datetime(2020, 7, 17, 8, 42, 58, 315000, tzinfo=UTC),
        links=(Link("https://acme.pagerduty.dev/build/2", "View more details"),),
        custom_details={"build_state": "passed", "build_number": "2"},
    )


def pd_errors(body: object, parse: Callable[[object], object] | None = None) -> list[str]:
    parse = parse or (lambda b: pagerduty.parse_event(b, new_key=fresh_key))
    with pytest.raises(PayloadError) as info:
        parse(body)
    assert info.value.message == "Event object is invalid"
    return info.value.errors


def with_payload(**changes: Any) -> dict[str, Any]:
    payload = {**PD_TRIGGER["payload"], **changes}
    return {**PD_TRIGGER, "payload": {k: v for k, v in payload.items() if v is not None}}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**PD_TRIGGER, "routing_key": ""}, "'routing_key' is missing or blank"),
        ({**PD_TRIGGER, "routing_key": 5}, "'routing_key' is invalid (must be a string)"),
        ({**PD_TRIGGER, "event_action": None}, "'event_action' is missing or blank"),
        (
            {**PD_TRIGGER, "event_action": "create"},
            "'event_action' is invalid (must be one of trigger, acknowledge, resolve)",
        ),
        ({**PD_TRIGGER, "dedup_key": "k" * 256}, "'dedup_key' is too long (max 255 characters)"),
        ({**PD_TRIGGER, "dedup_key": 1}, "'dedup_key' is invalid (must be a string)"),
        (
            {"routing_key": ROUTING_KEY, "event_action": "resolve"},
            "'dedup_key' is missing or blank (required to resolve)",
        ),
        (
            {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": " "},
            "'dedup_key' is missing or blank (required to acknowledge)",
        ),
        ({**PD_TRIGGER, "payload": None}, "'payload' is missing or blank"),
        ({**PD_TRIGGER, "payload": "x"}, "'payload' is invalid (must be an object)"),
        (with_payload(summary=None), "'payload.summary' is missing or blank"),
        (with_payload(summary="  "), "'payload.summary' is missing or blank"),
        (with_payload(summary="s" * 1025), "'payload.summary' is too long (max 1024 characters)"),
        (with_payload(source=None), "'payload.source' is missing or blank"),
        (with_payload(source="s" * 256), "'payload.source' is too long (max 255 characters)"),
        (with_payload(severity=None), "'payload.severity' is missing or blank"),
        (
            with_payload(severity="high"),
            "'payload.severity' is invalid (must be one of critical, error, warning, info)",
        ),
        (
            with_payload(timestamp="last tuesday"),
            "'payload.timestamp' is invalid (must be an ISO 8601 timestamp)",
        ),
        (with_payload(component=3), "'payload.component' is invalid (must be a string)"),
        ({**PD_TRIGGER, "links": {}}, "'links' is invalid (must be a list)"),
        ({**PD_TRIGGER, "links": ["https://x"]}, "'links[0]' is invalid (must be an object)"),
        ({**PD_TRIGGER, "links": [{"text": "x"}]}, "'links[0].href' is missing or blank"),
        ({**PD_TRIGGER, "images": [{"alt": "x"}]}, "'images[0].src' is missing or blank"),
        ([PD_TRIGGER], "Event must be a JSON object"),
    ],
)
def test_pagerduty_validation_errors(body: object, error: str) -> None:
    assert pd_errors(body) == [error]


def test_pagerduty_collects_every_error() -> None:
    body = {"event_action": "trigger", "dedup_key": "k" * 300, "payload": {"severity": "bad"}}
    assert pd_errors(body) == [
        "'routing_key' is missing or blank",
        "'dedup_key' is too long (max 255 characters)",
        "'payload.summary' is missing or blank",
        "'payload.source' is missing or blank",
        "'payload.severity' is invalid (must be one of critical, error, warning, info)",
    ]


def test_pagerduty_change_event_errors() -> None:
    body = {"payload": {"summary": "", "custom_details": [1], "timestamp": "soon"}}
    assert pd_errors(body, pagerduty.parse_change) == [
        "'routing_key' is missing or blank",
        "'payload.summary' is missing or blank",
        "'payload.timestamp' is invalid (must be an ISO 8601 timestamp)",
        "'payload.custom_details' is invalid (must be an object)",
    ]
    # A missing payload is one error, not one more for each member it would have had.
    assert pd_errors({"routing_key": "r"}, pagerduty.parse_change) == [
        "'payload' is missing or blank"
    ]


class _Recorder(BaseAdapter):
    """A requests transport that keeps what a client sent and answers like PagerDuty."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, Any]] = []

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        self.bodies.append((request.path_url, json.loads(request.body)))
        response = requests.Response()
        response.status_code = 202
        response.headers["Content-Type"] = "application/json"
        answer = {"status": "success", "message": "Event processed", "dedup_key": "k1"}
        response._content = json.dumps(answer).encode()
        response.request, response.url = request, request.url
        return response

    def close(self) -> None:
        pass


def test_pdpyras_requests_parse() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pdpyras warns that it is deprecated on import
        import pdpyras  # type: ignore[import-untyped]
    recorder = _Recorder()
    events = pdpyras.EventsAPISession(ROUTING_KEY)
    changes = pdpyras.ChangeEventsAPISession(ROUTING_KEY)
    for session in (events, changes):
        session.url = "http://tocsin.test/integrations/pagerduty"
        session.mount("http://", recorder)
    events.trigger(
        "disk full",
        "db-1",
        severity="error",
        custom_details={"free": 1},
        links=[{"href": "https://x.example", "text": "x"}],
        images=[{"src": "https://x.example/i.png"}],
    )
    events.trigger("cpu", "db-1", dedup_key="cpu/db-1", payload={"component": "pg"})
    events.acknowledge("k1")
    events.resolve("k1")
    changes.submit("deployed v2", "ci", custom_details={"v": 2}, links=[{"href": "https://ci"}])
    *alert_bodies, (change_path, change) = recorder.bodies
    signals = [pagerduty.parse_event(body, new_key=fresh_key) for _, body in alert_bodies]
    assert [(s.action, s.dedup_key, s.title) for s in signals] == [
        (Action.TRIGGER, "generated-key", "disk full"),
        (Action.TRIGGER, "cpu/db-1", "cpu"),
        (Action.ACKNOWLEDGE, "k1", ""),
        (Action.RESOLVE, "k1", ""),
    ]
    assert signals[0].severity == "error"
    assert signals[1].component == "pg"
    assert {path for path, _ in alert_bodies} == {"/integrations/pagerduty/v2/enqueue"}
    assert change_path == "/integrations/pagerduty/v2/change/enqueue"
    event = pagerduty.parse_change(change)
    assert (event.summary, event.source, event.custom_details) == ("deployed v2", "ci", {"v": 2})
    assert event.timestamp is not None
    assert abs(event.timestamp - datetime.now(UTC)) < timedelta(minutes=1)


# --- generic webhook ---


def test_generic_example_mapping() -> None:
    mapping = compile_mapping(GENERIC_EXAMPLE)
    [down] = mapping.parse({"check": "db", "state": "down", "level": "Critical"})
    assert (down.action, down.dedup_key, down.title, down.severity) == (
        Action.TRIGGER,
        "db",
        "db is down",
        "critical",
    )
    [up] = mapping.parse({"check": "db", "state": "up"})
    assert (up.action, up.dedup_key, up.title, up.severity) == (
        Action.RESOLVE,
        "db",
        "db is up",
        "error",
    )


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("resolved", Action.RESOLVE),
        ("OK", Action.RESOLVE),
        (" up ", Action.RESOLVE),
        ("resolve", Action.RESOLVE),
        ("acknowledged", Action.ACKNOWLEDGE),
        ("acknowledge", Action.ACKNOWLEDGE),
        ("firing", Action.TRIGGER),
        ("trigger", Action.TRIGGER),
        ("", Action.TRIGGER),
        ("whatever", Action.TRIGGER),
    ],
)
def test_generic_status_words(status: str, action: Action) -> None:
    mapping = compile_mapping({"title": "t", "status": {"jmespath": "s"}})
    assert mapping.parse({"s": status})[0].action is action


def test_generic_jmespath_fields_labels_links_and_details() -> None:
    mapping = compile_mapping(
        {
            "title": {"jmespath": "name"},
            "severity": {"jmespath": "sev"},
            "source": "{{ body.host }}",
            "labels": {"team": {"jmespath": "meta.team"}, "host": "{{ body.host }}", "no": ""},
            "links": {"jmespath": "urls"},
            "details": {"jmespath": "meta"},
        }
    )
    body = {
        "name": "Queue backlog",
        "sev": None,
        "host": "mq-1",
        "meta": {"team": "infra", "depth": 12000},
        "urls": ["https://a.example", {"href": "https://b.example", "text": "B"}, "ftp://c"],
    }
    [signal] = mapping.parse(body)
    assert signal.title == "Queue backlog"
    assert signal.severity is None
    assert signal.source == "mq-1"
    assert signal.labels == {"team": "infra", "host": "mq-1"}
    assert signal.links == (Link("https://a.example"), Link("https://b.example", "B"))
    assert signal.details == {"team": "infra", "depth": 12000}
    assert signal.dedup_key == label_set_key({**signal.labels, "__title__": "Queue backlog"})


def test_generic_labels_from_one_expression_and_template_links() -> None:
    mapping = compile_mapping(
        {
            "title": "x",
            "labels": {"jmespath": "tags"},
            "links": "{{ body.url }} {{ body.other }}",
            "details": {"text": "{{ body.url }}", "raw": {"jmespath": "tags"}},
        }
    )
    [signal] = mapping.parse({"tags": {"a": 1}, "url": "https://one.example"})
    assert signal.labels == {"a": "1"}
    assert signal.links == (Link("https://one.example"),)
    assert signal.details == {"text": "https://one.example", "raw": {"a": 1}}


def test_generic_items_map_each_element_with_root() -> None:
    mapping = compile_mapping(
        {
            "items": {"jmespath": "alerts"},
            "title": "{{ root.service }}: {{ body.name }}",
            "dedup_key": {"jmespath": "id"},
        }
    )
    signals = mapping.parse({"service": "api", "alerts": [{"id": "1", "name": "slow"}, {"id": 2}]})
    assert [(s.dedup_key, s.title) for s in signals] == [("1", "api: slow"), ("2", "api:")]
    assert mapping.parse({"alerts": []}) == []
    with pytest.raises(PayloadError) as info:
        mapping.parse({"alerts": {}})
    assert info.value.errors == ["items: expected a list, got an object"]
    with pytest.raises(PayloadError) as info:
        mapping.parse({"alerts": [{"id": [1]}]})
    assert info.value.errors == ["items[0].dedup_key: expected a string, got a list"]


def test_generic_renders_json_values_as_json() -> None:
    mapping = compile_mapping({"title": "{{ body.a }}|{{ body.b }}|{{ body.c }}|{{ body.values }}"})
    [signal] = mapping.parse({"a": None, "b": True, "c": [1, "x"], "values": {"k": 1}})
    assert signal.title == '|true|[1, "x"]|{"k": 1}'


def test_generic_any_json_body_and_empty_title() -> None:
    mapping = compile_mapping({"title": "{{ body.title }}"})
    bodies: list[object] = [None, 3, "text", [1], {}]
    for body in bodies:
        [signal] = mapping.parse(body)
        assert signal.title == "Alert"


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        ({"title": "{{ body.x }"}, "title: template syntax error: unexpected '}' (line 1)"),
        ({"title": "{{ x | nosuch }}"}, "title: template syntax error: No filter named 'nosuch'."),
        ({"title": {"jmespath": "a."}}, "title.jmespath: invalid JMESPath expression: Expecting"),
        (
            {"title": {"jmespath": "nope(@)"}},
            "title.jmespath: invalid JMESPath expression: unknown",
        ),
        ({"title": {"jmespath": ""}}, "title.jmespath: expected a non-empty JMESPath expression"),
        ({"title": 3}, "title: expected a template string or {jmespath: expression}"),
        ({"title": {"jmes": "a"}}, "title: expected a template string or {jmespath: expression}"),
        ({}, "title: required"),
        ({"title": "t", "body": "x"}, "body: unknown field; use title"),
        ({"title": "t", "labels": "{{ x }}"}, "labels: expected {jmespath: expression} or"),
        ({"title": "t", "labels": {"a": "{% if %}"}}, "labels.a: template syntax error"),
        ({"title": "t", "items": "alerts"}, "items: expected {jmespath: expression}"),
        ([], "mapping: expected an object, got a list"),
    ],
)
def test_generic_compile_errors_name_the_field(mapping: Any, error: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(error)):
        compile_mapping(mapping)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # the sandbox refuses
        "{{ body.missing() }}",  # calling an undefined value
        "{{ 1 / body.zero }}",
        "{{ body.n + 'x' }}",
        "{{ body.deep }}",  # json.dumps of a body nested past the recursion limit
    ],
)
def test_generic_rendering_errors_are_payload_errors(template: str) -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    mapping = compile_mapping({"title": "t", "source": template})
    with pytest.raises(PayloadError) as info:
        mapping.parse({"zero": 0, "n": 1, "deep": deep})
    assert info.value.errors[0].startswith("source: cannot evaluate: ")


def test_generic_jmespath_type_errors_are_payload_errors() -> None:
    mapping = compile_mapping({"title": {"jmespath": "length(n)"}})
    with pytest.raises(PayloadError) as info:
        mapping.parse({"n": 3})
    assert info.value.errors[0].startswith("title: cannot evaluate: JMESPathTypeError")


# --- property tests: nothing but a list of Signals or PayloadError ---

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Text includes lone surrogates and NUL: JSON decoders hand both over.
TEXT = st.text(st.characters(exclude_categories=()), max_size=20) | st.sampled_from(
    ["", "\ud800", "\x00", "resolved", "2024-05-01T12:00:00Z", "0001-01-01T00:00:00Z"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from([math.inf, math.nan])
    # Built, not sampled: hypothesis cannot repr an int of more than 4300 digits.
    | st.builds(pow, st.sampled_from([10, -10]), st.sampled_from([400, 5000]))
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
ODD_VALUES = (
    JSON
    | st.sampled_from(["x" * 100_000, "javascript:alert(1)", "9999-99-99T99:99:99Z"])
    | st.just("https://example.test/" + "p" * 5000)
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def near_valid(draw: st.DrawFn, skeleton: Any) -> Any:
    """A real payload with a few members replaced by odd values or removed."""
    body = copy.deepcopy(skeleton)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(skeleton)))
        parent = body
        try:
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(ODD_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change already replaced this member's parent
    return body


def check_signals(signals: object) -> None:
    assert isinstance(signals, list)
    for signal in signals:
        check_signal(signal)


def check_signal(signal: object) -> None:
    assert isinstance(signal, Signal)
    assert isinstance(signal.dedup_key, str)
    assert 0 < len(signal.dedup_key) <= 255
    assert len(signal.title) <= 1024
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in signal.labels.items())
    for text in (signal.title, signal.dedup_key, signal.source or "", *signal.labels.values()):
        text.encode("utf-8")  # storable: no lone surrogates left
    for link in signal.links:
        assert link.href.startswith(("http://", "https://"))


def parses_or_rejects(parse: Callable[[object], object], body: object) -> None:
    errors: list[str] | None
    try:
        result = parse(body)
    except PayloadError as exc:
        errors = exc.errors
    else:
        errors = None
    if errors is not None:
        assert errors
        assert all(isinstance(error, str) for error in errors)
        return
    if isinstance(result, list):
        check_signals(result)
    elif isinstance(result, Signal):
        check_signal(result)
    else:
        assert isinstance(result, ChangeEvent)


def pd_event(body: object) -> Signal:
    return pagerduty.parse_event(body, new_key=fresh_key)


PARSERS: dict[str, Callable[[object], object]] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "pagerduty": pd_event,
    "change": pagerduty.parse_change,
}
SKELETONS = {
    "alertmanager": ALERTMANAGER,
    "grafana": GRAFANA,
    "grafana-legacy": GRAFANA_LEGACY,
    "pagerduty": PD_TRIGGER,
    "change": PD_CHANGE,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(body=JSON)
def test_any_json_is_parsed_or_rejected(name: str, body: Any) -> None:
    parses_or_rejects(PARSERS[name], body)


@pytest.mark.parametrize("name", sorted(SKELETONS))
@FUZZ
@given(data=st.data())
def test_near_valid_payloads_are_parsed_or_rejected(name: str, data: st.DataObject) -> None:
    body = data.draw(near_valid(SKELETONS[name]))
    parse = PARSERS[name.removesuffix("-legacy")]
    parses_or_rejects(parse, body)


@FUZZ
@given(body=JSON, action=st.sampled_from(["trigger", "acknowledge", "resolve"]))
def test_pagerduty_events_with_any_members(body: Any, action: str) -> None:
    if isinstance(body, dict):
        body = {**body, "routing_key": ROUTING_KEY, "event_action": action, "payload": body}
    parses_or_rejects(pd_event, body)


GENERIC_MAPPINGS = [
    GENERIC_EXAMPLE,
    {
        "items": {"jmespath": "alerts"},
        "title": "{{ root.service }} {{ body.name }} {{ body }}",
        "dedup_key": {"jmespath": "id"},
        "status": {"jmespath": "state"},
        "severity": {"jmespath": "level"},
        "source": {"jmespath": "host"},
        "labels": {"jmespath": "labels"},
        "links": {"jmespath": "links"},
        "details": {"jmespath": "details"},
    },
    {
        "title": {"jmespath": "title"},
        "labels": {"team": {"jmespath": "team"}, "host": "{{ body.host | upper }}"},
        "links": "{{ body.url }}",
        "details": {"n": {"jmespath": "length(items)"}, "t": "{{ body.n * 2 }}"},
    },
]


@pytest.mark.parametrize("index", range(len(GENERIC_MAPPINGS)))
@FUZZ
@given(body=JSON | near_valid({"service": "s", "alerts": [{"id": "1", "labels": {"a": "b"}}]}))
def test_generic_mappings_parse_or_reject_any_json(index: int, body: Any) -> None:
    mapping = compile_mapping(GENERIC_MAPPINGS[index])
    parses_or_rejects(mapping.parse, body)


@FUZZ
@given(spec=JSON | st.dictionaries(st.sampled_from(["title", "labels", "items"]), JSON | TEXT))
def test_compile_mapping_accepts_or_raises_value_error(spec: Any) -> None:
    try:
        mapping = compile_mapping(spec)
    except ValueError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        return
    assert isinstance(mapping, GenericMapping)
    parses_or_rejects(mapping.parse, {"a": 1})


@FUZZ
@given(
    template=st.text(max_size=40) | st.from_regex(r"\{\{[ a-z.|()'0-9+*/-]{0,20}\}\}"), body=JSON
)
def test_any_template_compiles_or_raises_value_error(template: str, body: Any) -> None:
    try:
        mapping = compile_mapping({"title": template, "labels": {"x": template}})
    except ValueError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith("title: ")
        return
    parses_or_rejects(mapping.parse, body)


def test_times_with_offsets_are_normalised_to_utc() -> None:
    [signal] = alertmanager.parse({"alerts": [{"startsAt": "2024-05-01T00:00:00+0100"}]})
    assert signal.starts_at == datetime(2024, 4, 30, 23, tzinfo=UTC)
    assert signal.starts_at.tzinfo is UTC
