"""Stakeholder updates over the REST API and the `tocsin incident update` CLI against a real
server, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from tests.conftest import ADMIN_TOKEN, EXAMPLES, FakeClock, apply_yaml
from tests.e2e.serving import in_thread
from tocsin.api.app import create_app
from tocsin.cli.main import app as cli
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import OutboxRow

COMMUNICATION = """
audiences:
  - {id: stakeholders, type: email, to: [stakeholders@example.test]}
  - {id: ops-feed, type: webhook, url: "http://127.0.0.1:9911/ops/secret-path", secret: s3cret}
  - {id: status, type: statuspage}
communication:
  - {severities: [P0, P1], audiences: [stakeholders, ops-feed, status]}
  - {severities: [P2], audiences: [ops-feed], messages: [initial, resolution]}
"""


@pytest.fixture
def configured(core_config: Database) -> Database:
    for name in ("alerting.yaml", "oncall.yaml"):
        apply_yaml(core_config, (EXAMPLES / name).read_text())
    apply_yaml(core_config, COMMUNICATION)
    return core_config


@pytest.fixture
def api(
    configured: Database, make_settings: Callable[..., Any], clock: FakeClock
) -> Iterator[TestClient]:
    settings = make_settings(configured.url, public_url="https://tocsin.example")
    app = create_app(settings, configured, clock)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def declare(api: TestClient, severity: str = "P1") -> int:
    body = {"title": "Checkout fails", "severity": severity, "services": ["api"],
            "roles": {"commander": "alice"}, "customer_impact": "Some checkouts fail"}  # fmt: skip
    response = api.post("/api/v1/incidents", json=body)
    assert response.status_code == 201, response.text
    number: int = response.json()["id"]
    return number


def test_preview_renders_every_audience_and_sends_nothing(api: TestClient) -> None:
    number = declare(api)
    response = api.post(
        f"/api/v1/incidents/INC-{number}/updates/preview",
        json={"message": "Rolled back", "status": "identified", "eta": "20 minutes"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "update"
    assert body["status"] == "identified"
    assert [a["audience"] for a in body["audiences"]] == ["stakeholders", "ops-feed", "status"]
    mail = body["audiences"][0]
    assert mail["title"] == "📊 INCIDENT UPDATE - P1: Checkout fails"
    assert "Status: IDENTIFIED" in mail["body"]
    assert f"Channel: #incident-2026-03-14-00{number}" in mail["body"]
    # The webhook's path can hold a secret: the preview shows the host only.
    assert body["audiences"][1]["recipients"] == ["127.0.0.1"]
    assert body["next_update_at"].startswith("2026-03-14T10:26:53")
    assert api.get(f"/api/v1/incidents/{number}").json()["status"] == "triggered"
    assert api.get(f"/api/v1/incidents/{number}/updates").json()["items"] == []


def test_send_queues_messages_records_the_timeline_and_changes_status(
    api: TestClient, configured: Database, clock: FakeClock
) -> None:
    number = declare(api)
    clock.advance(minutes=20)
    response = api.post(
        f"/api/v1/incidents/{number}/updates",
        json={"message": "Rolled back v2.3", "status": "monitoring", "next_steps": "Watch"},
    )
    assert response.status_code == 201, response.text
    sent = response.json()
    assert response.headers["location"] == f"/api/v1/incidents/{number}/updates"
    assert (sent["kind"], sent["status"], sent["messages"]) == ("update", "monitoring", 2)
    assert sent["audiences"] == ["stakeholders", "ops-feed", "status"]
    assert sent["created_by"] == "admin-token"
    assert "https://tocsin.example/incidents/" not in sent["sent"][0]["body"]  # updates: no link
    assert api.get(f"/api/v1/incidents/{number}").json()["status"] == "monitoring"
    events = api.get(f"/api/v1/incidents/{number}/timeline").json()["items"]
    assert [e["kind"] for e in events[-3:]] == [
        "status_changed", "status_page_update", "stakeholder_update",
    ]  # fmt: skip
    assert events[-1]["text"] == (
        "Update to stakeholders (stakeholders, ops-feed, status): Rolled back v2.3"
    )
    assert events[-2]["text"].startswith("Public status: 📊 INCIDENT UPDATE - P1")
    assert events[-1]["data"]["audiences"] == ["stakeholders", "ops-feed", "status"]
    with configured.read() as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.kind == "stakeholder")).all()
        assert sorted(r.channel for r in rows) == ["email", "webhook"]
    (listed,) = api.get(f"/api/v1/incidents/{number}/updates").json()["items"]
    assert listed["id"] == sent["id"]
    assert listed["automatic"] is False


def test_communication_names_audiences_and_the_next_deadline(
    api: TestClient, clock: FakeClock
) -> None:
    number = declare(api, "P0")
    state = api.get(f"/api/v1/incidents/{number}/communication").json()
    assert state["audiences"] == [
        {"id": "stakeholders", "type": "email", "messages": ["initial", "update", "resolution"]},
        {"id": "ops-feed", "type": "webhook", "messages": ["initial", "update", "resolution"]},
        {"id": "status", "type": "statuspage", "messages": ["initial", "update", "resolution"]},
    ]
    assert state["update_every"] == "30 minutes"
    assert state["next_update_at"].startswith("2026-03-14T09:56:53")
    assert (state["due"], state["overdue"]) == (False, False)
    clock.advance(minutes=50)
    assert api.get(f"/api/v1/incidents/{number}/communication").json()["overdue"] is True


def test_bad_requests_are_clear_4xx(api: TestClient) -> None:
    number = declare(api)
    url = f"/api/v1/incidents/{number}/updates"
    empty = api.post(url, json={"message": "   "})
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "message"
    typo = api.post(url, json={"mesage": "x"})
    assert typo.status_code == 422
    assert {e["field"] for e in typo.json()["errors"]} == {"message", "mesage"}
    api.post(f"/api/v1/incidents/{number}/resolve")
    api.post(f"/api/v1/incidents/{number}/status", json={"status": "closed"})
    illegal = api.post(url, json={"message": "x", "status": "monitoring"})
    assert illegal.status_code == 409
    assert illegal.json()["allowed_next"] == []
    assert api.post("/api/v1/incidents/999/updates", json={"message": "x"}).status_code == 404
    assert api.get("/api/v1/incidents/nope/communication").status_code == 404


def test_readers_cannot_send(api: TestClient) -> None:
    number = declare(api)
    token = api.post("/api/v1/tokens", json={"name": "dash", "scopes": ["read"]}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/incidents/{number}/updates"
    assert api.post(url, json={"message": "x"}, headers=headers).status_code == 403
    assert api.post(f"{url}/preview", json={"message": "x"}, headers=headers).status_code == 403
    assert api.get(url, headers=headers).status_code == 200


# --- the CLI against a real server ---


@pytest.fixture
def server(
    configured: Database, make_settings: Callable[..., Any], clock: FakeClock
) -> Iterator[str]:
    web = create_app(make_settings(configured.url), configured, clock)
    with in_thread(web) as base:
        yield base


@pytest.fixture
def run(server: str) -> Callable[..., Result]:
    def _run(*args: str, stdin: str | None = None) -> Result:
        extra = ["--server", server, "--token", ADMIN_TOKEN]
        env = {"TOCSIN_SERVER": None, "TOCSIN_TOKEN": None}
        return CliRunner().invoke(cli, ["incident", *args, *extra], env=env, input=stdin)

    return _run


def test_cli_previews_sends_and_lists_updates(run: Callable[..., Result]) -> None:
    declared = run("declare", "Checkout fails", "-s", "P1", "--service", "api",
                   "--commander", "alice")  # fmt: skip
    assert declared.exit_code == 0, declared.output
    preview = run("update", "1", "--message", "Rolled back", "--eta", "20 minutes", "--preview")
    assert preview.exit_code == 0, preview.output
    assert "── stakeholders (email → stakeholders@example.test)" in preview.output
    assert "📊 INCIDENT UPDATE - P1: Checkout fails" in preview.output
    assert "ETA: 20 minutes" in preview.output
    assert "nothing was sent" in preview.output

    sent = run("update", "INC-1", "--message", "-", "--status", "identified",
               stdin="Rolled back v2.3\n")  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert "Update #1 for INC-1 sent to stakeholders, ops-feed, status (2 messages)" in sent.output
    assert "status is now identified" in sent.output
    assert "next update due 2026-03-14 10:26" in sent.output

    listed = run("updates", "1")
    assert listed.exit_code == 0, listed.output
    assert "update by admin-token to stakeholders, ops-feed, status" in listed.output
    assert "Rolled back v2.3" in listed.output
    assert "next update due 2026-03-14 10:26" in listed.output

    refused = run("update", "1", "--message", "x", "--status", "bogus")
    assert refused.exit_code == 1
    assert "status" in refused.output
