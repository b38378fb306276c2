"""Slack's Acknowledge / Resolve buttons: signed requests to /api/v1/slack/interactions, through
the FastAPI app on SQLite and PostgreSQL, with users.info answered by the local Slack mock."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tests.mocks.slack_api import SlackApiMock
from tests.oncall_harness import LINKS
from tests.receivers import WebhookReceiver
from tocsin.engine.loop import Engine
from tocsin.engine.oncall import EscalationModule, NotificationRuleModule
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.notify.registry import ChannelRegistry
from tocsin.storage.db import Database

SECRET = "test-signing-secret"
PATH = "/api/v1/slack/interactions"


@pytest.fixture
def slack() -> Iterator[SlackApiMock]:
    with SlackApiMock() as mock:
        mock.add_user("U0ALICE", "Alice@Example.test")  # linked through the email only
        mock.add_user("U0BOB", "bob.private@example.test")  # linked through a contact method
        mock.add_user("U0STRANGER", "stranger@example.test")
        yield mock


@pytest.fixture
def app(alerting_api: TestClient, core_config: Database, slack: SlackApiMock) -> TestClient:
    """The API on the core, alerting and on-call examples, with Slack set up and linked."""
    apply_yaml(core_config, (EXAMPLES / "oncall.yaml").read_text())
    apply_yaml(
        core_config,
        f"""
channels:
  slack: {{token: {slack.token}, api_url: "{slack.url}", signing_secret: {SECRET}}}
users:
  - id: bob
    name: Bob Example
    email: bob@example.test
    role: responder
    contact_methods:
      - {{id: bob-slack, type: slack, member: U0BOB}}
  - id: carol
    name: Carol Example
    email: carol@example.test
    role: viewer
    contact_methods:
      - {{id: carol-slack, type: slack, member: U0CAROL}}
""",
    )
    return alerting_api


def signed(
    clock: FakeClock, payload: Any, *, secret: str = SECRET, age: int = 0
) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(clock.now.timestamp()) - age)
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    return body, headers


def click(
    member: str, action: str, value: str, *, response_url: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": member, "username": member.lower(), "team_id": "T0"},
        "team": {"id": "T0"},
        "channel": {"id": "C0OPS", "name": "ops"},
        "actions": [
            {"action_id": "other-app:thing", "value": "x", "type": "button"},
            {"action_id": f"tocsin:{action}", "value": value, "type": "button",
             "block_id": "tocsin:x", "action_ts": "1700000000.1"},
        ],
    }  # fmt: skip
    if response_url:
        payload["response_url"] = response_url
    return payload


def post(app: TestClient, clock: FakeClock, payload: Any, **kw: Any) -> Any:
    body, headers = signed(clock, payload, **kw)
    return app.post(PATH, content=body, headers=headers)


def declare(app: TestClient) -> int:
    body = {"title": "Checkout is down", "severity": "P1", "services": ["api"]}
    res = app.post("/api/v1/incidents", json=body)
    assert res.status_code == 201, res.text
    incident_id: int = res.json()["id"]
    return incident_id


def test_acknowledge_and_resolve_an_incident(app: TestClient, clock: FakeClock) -> None:
    incident = declare(app)
    res = post(app, clock, click("U0BOB", "acknowledge", f"incident:{incident}"))
    assert res.status_code == 200, res.text
    assert res.json() == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": f"Incident #{incident} (Checkout is down) is acknowledged by Bob Example; "
        "no more pages.",
    }
    shown = app.get(f"/api/v1/incidents/{incident}").json()
    assert shown["status"] == "investigating"
    events = app.get(f"/api/v1/incidents/{incident}/timeline").json()["items"]
    acked = next(e for e in events if e["kind"] == "acknowledged")
    assert (acked["actor"], acked["source"]) == ("bob", "slack")
    again = post(app, clock, click("U0BOB", "acknowledge", f"incident:{incident}"))
    assert "was already acknowledged" in again.json()["text"]
    done = post(app, clock, click("U0BOB", "resolve", f"incident:{incident}"))
    assert "is resolved by Bob Example" in done.json()["text"]
    assert app.get(f"/api/v1/incidents/{incident}").json()["status"] == "resolved"


def test_a_member_is_linked_by_email_when_no_contact_method_names_them(
    app: TestClient, clock: FakeClock, slack: SlackApiMock
) -> None:
    alert = {"status": "firing", "labels": {"alertname": "HighLatency", "cluster": "eu-1"},
             "annotations": {"summary": "slow"}}  # fmt: skip
    res = app.post("/api/v1/ingest/am-production-0001", json={"version": "4", "alerts": [alert]})
    assert res.status_code == 202, res.text
    group = app.get("/api/v1/alert-groups").json()["items"][0]["id"]
    res = post(app, clock, click("U0ALICE", "acknowledge", f"alert_group:{group}"))
    assert "is acknowledged by Alice Example" in res.json()["text"]
    assert slack.calls_to("users.info")[0].args["user"] == "U0ALICE"
    assert app.get(f"/api/v1/alert-groups/{group}").json()["acknowledged_by"] == "alice"
    res = post(app, clock, click("U0ALICE", "resolve", f"alert_group:{group}"))
    assert "is resolved" in res.json()["text"]
    assert app.get(f"/api/v1/alert-groups/{group}").json()["status"] == "resolved"
    res = post(app, clock, click("U0ALICE", "resolve", f"alert_group:{group}"))
    assert "already resolved" in res.json()["text"]


def test_an_unlinked_member_is_told_how_to_link(app: TestClient, clock: FakeClock) -> None:
    incident = declare(app)
    for member in ("U0STRANGER", "U0NOBODY", "not-a-member"):
        res = post(app, clock, click(member, "acknowledge", f"incident:{incident}"))
        assert res.status_code == 200
        assert res.json()["text"].startswith("Your Slack account is not linked to a Tocsin user")
    assert app.get(f"/api/v1/incidents/{incident}").json()["status"] == "triggered"


def test_a_viewer_may_not_act(app: TestClient, clock: FakeClock) -> None:
    incident = declare(app)
    res = post(app, clock, click("U0CAROL", "resolve", f"incident:{incident}"))
    assert res.json()["text"] == (
        "Your Tocsin role (viewer) may not resolve incidents or alert groups."
    )
    assert app.get(f"/api/v1/incidents/{incident}").json()["status"] == "triggered"


def test_unknown_subjects_and_other_interactions(app: TestClient, clock: FakeClock) -> None:
    res = post(app, clock, click("U0BOB", "acknowledge", "incident:999999"))
    assert res.status_code == 200
    assert res.json()["text"].startswith("Tocsin cannot find it:")
    other = {"type": "view_submission", "user": {"id": "U0BOB"}}
    assert post(app, clock, other).status_code == 200
    foreign = click("U0BOB", "acknowledge", "incident:1")
    foreign["actions"] = foreign["actions"][:1]  # only another app's button
    res = post(app, clock, foreign)
    assert (res.status_code, res.content) == (200, b"")


def test_the_answer_also_goes_to_the_response_url(app: TestClient, clock: FakeClock) -> None:
    incident = declare(app)
    with WebhookReceiver() as slack_hooks:
        url = slack_hooks.url("/actions/T0/1/abc")
        post(app, clock, click("U0BOB", "acknowledge", f"incident:{incident}", response_url=url))
        (told,) = slack_hooks.wait_for(1)
    assert told.json["response_type"] == "ephemeral"
    assert "is acknowledged by Bob Example" in told.json["text"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"secret": "another-secret"}, "bad signature"),
        ({"age": 301}, "stale request"),
        ({"age": -301}, "stale request"),
    ],
)
def test_requests_not_signed_now_with_the_secret_are_refused(
    app: TestClient, clock: FakeClock, change: dict[str, Any], says: str
) -> None:
    incident = declare(app)
    res = post(app, clock, click("U0BOB", "acknowledge", f"incident:{incident}"), **change)
    assert res.status_code == 401
    assert says in res.json()["detail"]
    assert app.get(f"/api/v1/incidents/{incident}").json()["status"] == "triggered"


def test_tampered_and_unsigned_requests_are_refused(app: TestClient, clock: FakeClock) -> None:
    incident = declare(app)
    body, headers = signed(clock, click("U0BOB", "acknowledge", f"incident:{incident}"))
    tampered = body.replace(b"U0BOB", b"U0BOC")
    assert app.post(PATH, content=tampered, headers=headers).status_code == 401
    res = app.post(PATH, content=body, headers={"Content-Type": headers["Content-Type"]})
    assert res.status_code == 401
    assert "missing X-Slack-Request-Timestamp" in res.json()["detail"]
    headers["X-Slack-Request-Timestamp"] = "soon"
    assert "not a Unix time" in app.post(PATH, content=body, headers=headers).json()["detail"]
    # A correctly signed body that is not Slack's form gets 400, never 500.
    garbage = signed(clock, None)
    raw = b"payload=%7Bnot-json"
    _, raw_headers = garbage
    timestamp = raw_headers["X-Slack-Request-Timestamp"]
    digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + raw, hashlib.sha256)
    raw_headers["X-Slack-Signature"] = f"v0={digest.hexdigest()}"
    res = app.post(PATH, content=raw, headers=raw_headers)
    assert res.status_code == 400
    assert "form field `payload`" in res.json()["detail"]


def test_without_a_signing_secret_interactivity_is_off(
    alerting_api: TestClient, clock: FakeClock
) -> None:
    res = post(alerting_api, clock, click("U0BOB", "acknowledge", "incident:1"))
    assert res.status_code == 404
    assert res.json() == {
        "detail": "Slack interactivity is not set up: set channels.slack.signing_secret"
    }


def test_a_page_in_slack_is_acknowledged_with_its_own_button(
    app: TestClient, core_config: Database, clock: FakeClock, slack: SlackApiMock
) -> None:
    """Page → outbox → Slack channel → the member's DM with buttons → a click → no more pages."""
    apply_yaml(
        core_config,
        """
users:
  - id: bob
    name: Bob Example
    email: bob@example.test
    role: responder
    contact_methods:
      - {id: bob-slack, type: slack, member: U0BOB}
    notification_rules:
      high: [{after: 0m, via: bob-slack}]
""",
    )
    channels = ChannelRegistry()
    sender = OutboxSender(channels, owner="test", workers=2, clock=clock)
    engine = Engine(
        core_config,
        clock,
        [EscalationModule(), NotificationRuleModule(LINKS), sender],
        registry=CollectorRegistry(),
    )
    try:
        incident = declare(app)  # api → api-default → schedule primary: bob is on call now
        for _ in range(10):
            engine.run_once(woken=True)
        (page,) = slack.messages
        assert page.channel == "D0BOB"  # a direct message to bob's member id
        buttons = {b["action_id"]: b["value"] for b in page.blocks[-1]["elements"]}
        assert buttons == {
            "tocsin:acknowledge": f"incident:{incident}",
            "tocsin:resolve": f"incident:{incident}",
        }
        res = post(app, clock, click("U0BOB", "acknowledge", buttons["tocsin:acknowledge"]))
        assert "is acknowledged by Bob Example" in res.json()["text"]
        notes = app.get(f"/api/v1/incidents/{incident}/notifications").json()
        assert notes["escalation"]["status"] == "acknowledged"
        assert [m["status"] for m in notes["messages"]] == ["sent"]
    finally:
        sender.close()
        channels.close()
