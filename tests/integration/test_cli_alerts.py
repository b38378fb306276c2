"""`tocsin alert|alert-group|silence|maintenance|heartbeat …` against a real server over HTTP.

Alerts arrive the way monitoring sends them (PagerDuty Events v2, Alertmanager webhooks) on a
server configured with examples/core.yaml and examples/alerting.yaml; SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.conftest import ADMIN_TOKEN, EXAMPLES, apply_yaml
from tests.integration.test_cli_incidents import failed, ok, server
from tocsin.cli import alert_cmds
from tocsin.cli.main import app
from tocsin.services import access
from tocsin.storage.db import Database

__all__ = ["server"]  # a fixture, imported for pytest to find
PD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # service database
AM_KEY = "am-production-0001"  # service api
Run = Callable[..., Result]


@pytest.fixture
def run(server: str, core_config: Database, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke `tocsin ARGS --server URL --token T` on a server with the alerting example."""
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    # Output is not a terminal here, so Rich would wrap tables at 80 columns; a row of a wide
    # terminal is what these assertions read.
    monkeypatch.setattr(alert_cmds.out, "width", 200)

    def _run(*args: str, token: str | None = ADMIN_TOKEN, url: str = server) -> Result:
        extra = ["--server", url] + (["--token", token] if token is not None else [])
        env = {"TOCSIN_SERVER": None, "TOCSIN_TOKEN": None}
        return CliRunner().invoke(app, [*args, *extra], env=env)

    return _run


@pytest.fixture
def send(server: str) -> Callable[..., None]:
    """Send one alert as monitoring would: PagerDuty (database) or Alertmanager (api)."""

    def _send(kind: str, name: str, severity: str = "error") -> None:
        if kind == "pagerduty":
            body: dict[str, Any] = {
                "routing_key": PD_KEY,
                "event_action": "trigger",
                "dedup_key": name,
                "payload": {"summary": f"{name} on db-1", "source": "db-1", "severity": severity},
                "links": [{"href": "https://runbooks.example/disk", "text": "Runbook"}],
            }
            response = httpx.post(f"{server}/v2/enqueue", json=body, timeout=10)
        else:
            alert = {
                "status": "firing",
                "labels": {"alertname": name, "cluster": "eu-1", "severity": severity},
                "annotations": {"summary": f"{name} on eu-1"},
                "fingerprint": f"fp-{name}",
            }
            body = {"version": "4", "status": "firing", "alerts": [alert]}
            response = httpx.post(f"{server}/api/v1/ingest/{AM_KEY}", json=body, timeout=10)
        assert response.status_code == 202, response.text

    return _send


def test_alert_list_filters_and_show(run: Run, send: Callable[..., None]) -> None:
    send("pagerduty", "DiskFull")
    send("alertmanager", "HighLatency")
    table = ok(run("alert", "list"))
    for header in ("ID", "Status", "Sev", "Title", "Service", "Group", "Events", "Last seen"):
        assert header in table
    assert re.search(r"2\s.*firing\s.*error\s.*HighLatency on eu-1\s.*api", table)
    assert re.search(r"1\s.*firing\s.*error\s.*DiskFull on db-1\s.*database", table)
    only_api = ok(run("alert", "list", "--service", "api"))
    assert "HighLatency" in only_api
    assert "DiskFull" not in only_api
    assert "DiskFull" in ok(run("alert", "list", "--dedup-key", "DiskFull"))
    labelled = ok(run("alert", "list", "-l", "alertname=HighLatency", "--label", "cluster=eu-1"))
    assert "HighLatency" in labelled
    assert "DiskFull" not in labelled
    assert "no alerts match" in ok(run("alert", "list", "--status", "resolved"))
    page = json.loads(ok(run("alert", "list", "--json", "--limit", "1")))
    assert [a["title"] for a in page["items"]] == ["HighLatency on eu-1"]
    assert page["next_cursor"]
    rest = ok(run("alert", "list", "--limit", "1", "--cursor", page["next_cursor"]))
    assert "DiskFull" in rest
    shown = ok(run("alert", "show", "2"))
    assert "alert 2  HighLatency on eu-1" in shown
    assert "alertname=HighLatency  cluster=eu-1  severity=error" in shown
    assert "integration  fired" in shown
    assert "Runbook https://runbooks.example/disk" in ok(run("alert", "show", "1"))
    assert json.loads(ok(run("alert", "show", "1", "--json")))["dedup_key"] == "DiskFull"
    assert "alert 99 not found" in failed(run("alert", "show", "99"))
    assert "not an id: 'x'" in failed(run("alert", "show", "x"))
    assert "must look like name=value" in failed(run("alert", "list", "--label", "oops"))


def test_group_list_show_ack_resolve(run: Run, send: Callable[..., None]) -> None:
    send("pagerduty", "DiskFull")
    send("alertmanager", "HighLatency")
    table = ok(run("alert-group", "list"))
    for header in ("ID", "Status", "Urgency", "Title", "Service", "Alerts", "Incident", "Age"):
        assert header in table
    assert "HighLatency" not in ok(run("alert-group", "list", "--service", "database"))
    assert "HighLatency" in ok(run("alert-group", "list", "-l", "cluster=eu-1"))
    out = ok(run("alert-group", "ack", "1"))
    assert "alert group 1 acknowledged; status acknowledged" in out
    shown = ok(run("alert-group", "show", "1"))
    assert "alert group 1  DiskFull on db-1" in shown
    assert "acknowledged  " in shown
    assert "by admin-token" in shown
    assert "Alerts (1)" in shown
    assert "History (latest 3 of 3)" in shown
    assert shown.index("fired") < shown.index("admin-token  acknowledged")
    assert "acknowledged" in ok(run("alert-group", "list", "--status", "acknowledged"))
    data = json.loads(ok(run("alert-group", "resolve", "1", "--json")))
    assert (data["status"], data["resolved_by"]) == ("resolved", "admin-token")
    err = failed(run("alert-group", "ack", "1"))
    assert "cannot move from 'resolved' to 'acknowledged'" in err
    assert "alert group 9 not found" in failed(run("alert-group", "show", "9"))


def test_group_silence_declare_merge(run: Run, send: Callable[..., None]) -> None:
    send("alertmanager", "HighLatency")
    send("pagerduty", "DiskFull")
    assert "exactly one of --for" in failed(run("alert-group", "silence", "1"))
    assert "invalid duration" in failed(run("alert-group", "silence", "1", "--for", "soon"))
    out = ok(run("alert-group", "silence", "1", "--for", "2h", "-m", "known"))
    assert "alert group 1 silenced; status suppressed" in out
    silences = ok(run("silence", "list"))
    assert "alertname=HighLatency, cluster=eu-1, severity=error" in silences
    assert "known" in silences
    out = ok(run("alert-group", "declare", "2", "--severity", "P2", "--title", "DB disk"))
    assert "alert group 2 declared as INC-1; status firing" in out
    incident = json.loads(ok(run("incident", "show", "INC-1", "--json")))
    assert (incident["title"], incident["severity"]) == ("DB disk", "P2")
    assert "already linked to incident 1" in failed(run("alert-group", "declare", "2"))
    out = ok(run("alert-group", "merge", "1", "INC-1"))
    assert "alert group 1 merged into INC-1" in out
    assert "INC-1" in ok(run("alert-group", "list", "--service", "api"))
    assert "incident 7 not found" in failed(run("alert-group", "merge", "1", "7"))


def test_silence_create_list_expire(run: Run) -> None:
    out = ok(run("silence", "create", "--match", "alertname=DiskFull",
                 "--match", "instance=~db-.*", "--match", "env!=prod",
                 "--for", "90m", "--comment", "disk swap"))  # fmt: skip
    assert re.search(r"silence \d+ \(alertname=DiskFull, instance=~db-\.\*, env!=prod\)", out)
    created = json.loads(ok(run("silence", "list", "--json")))["items"]
    mine = next(s for s in created if not s["from_config"])
    assert mine["matchers"] == {
        "alertname": "DiskFull",
        "instance": {"regex": "db-.*"},
        "env": {"ne": "prod"},
    }
    table = ok(run("silence", "list"))
    assert "disk swap" in table
    assert "(config)" in table  # the example's staging silence
    later = ok(run("silence", "create", "--match", "job=batch", "--start",
                   "2030-01-01T00:00", "--until", "2030-01-01T02:00+01:00"))  # fmt: skip
    assert "until 2030-01-01 01:00:00Z" in later
    assert "scheduled" in ok(run("silence", "list"))
    assert f"silence {mine['id']} expired" in ok(run("silence", "expire", str(mine["id"])))
    assert "disk swap" not in ok(run("silence", "list"))
    assert "disk swap" in ok(run("silence", "list", "--all"))
    assert "must look like name=value" in failed(
        run("silence", "create", "--match", "x", "--for", "1h")
    )
    assert "not an ISO 8601 time" in failed(
        run("silence", "create", "--match", "a=b", "--until", "tomorrow")
    )
    assert "ends_at must be after starts_at" in failed(
        run("silence", "create", "--match", "a=b", "--until", "2001-01-01T00:00Z")
    )
    assert "silence 999 not found" in failed(run("silence", "expire", "999"))


def test_maintenance_create_list_end(run: Run) -> None:
    out = ok(run("maintenance", "create", "api", "--for", "2h", "--comment", "db upgrade"))
    window = re.search(r"maintenance window (\d+) on api: ", out)
    assert window
    ok(run("maintenance", "create", "database", "--start", "2030-01-01T00:00Z", "--for", "1h"))
    table = ok(run("maintenance", "list"))
    assert "active" in table
    assert "scheduled" in table
    assert "db upgrade" in table
    only = json.loads(ok(run("maintenance", "list", "--service", "database", "--json")))
    assert [w["service"] for w in only["items"]] == ["database"]
    ended = ok(run("maintenance", "end", window.group(1)))
    assert f"maintenance window {window.group(1)} ended at" in ended
    assert "db upgrade" not in ok(run("maintenance", "list"))
    assert "db upgrade" in ok(run("maintenance", "list", "--all"))
    assert "valid: api, database" in failed(run("maintenance", "create", "web", "--for", "1h"))
    assert "exactly one of --for" in failed(run("maintenance", "create", "api"))


def test_heartbeat_list_and_ping(run: Run) -> None:
    table = ok(run("heartbeat", "list"))
    assert re.search(r"nightly-backup-0001\s.*Nightly backup\s.*database\s.*waiting\s.*1d1h", table)
    out = ok(run("heartbeat", "ping", "nightly-backup-0001"))
    assert "heartbeat nightly-backup-0001 pinged at" in out
    beats = json.loads(ok(run("heartbeat", "list", "--json")))["items"]
    assert [(b["key"], b["status"]) for b in beats] == [("nightly-backup-0001", "ok")]
    assert "no heartbeat with key 'nope'" in failed(run("heartbeat", "ping", "nope"))


def test_scopes_and_unreachable(run: Run, core_config: Database, send: Callable[..., None]) -> None:
    send("pagerduty", "DiskFull")
    with core_config.write() as session:
        issued = access.create_token(session, datetime.now(UTC), name="ro", scopes=["read"])
        session.commit()
    assert "DiskFull" in ok(run("alert-group", "list", token=issued.token))
    for args in (
        ("alert-group", "ack", "1"),
        ("silence", "create", "--match", "a=b", "--for", "1h"),
        ("maintenance", "end", "1"),
    ):
        assert "not allowed: this needs the 'respond' scope" in failed(
            run(*args, token=issued.token)
        )
    assert "not authenticated" in failed(run("alert", "list", token=None))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    err = failed(run("alert-group", "list", url=f"http://127.0.0.1:{port}"), code=2)
    assert f"cannot reach Tocsin at http://127.0.0.1:{port}" in err
