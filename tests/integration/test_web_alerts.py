"""Web UI alerting: alert groups from real ingest calls, worked through the forms, as a user."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tocsin.api.app import create_app
from tocsin.services import access, alert_queries, timeline
from tocsin.storage.db import Database
from tocsin.storage.tables import AlertGroupRow, MaintenanceWindowRow, SilenceRow

PASSWORD = "correct horse battery"
PD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # examples/alerting.yaml: service database
AM_KEY = "am-production-0001"  # service api
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Web:
    """A browser stand-in signed in as one user; also the monitoring tools sending alerts."""

    def __init__(self, client: TestClient, db: Database) -> None:
        self.client = client
        self.db = db
        self.csrf = ""

    def login(self, who: str) -> None:
        self.client.cookies.clear()
        token = _CSRF.search(self.client.get("/login").text)
        assert token
        response = self.client.post(
            "/login",
            data={"login": who, "password": PASSWORD, "csrf": token.group(1)},
            follow_redirects=False,
        )
        assert response.status_code == 303
        found = _CSRF.search(self.client.get("/incidents").text)
        assert found
        self.csrf = found.group(1)

    def post(self, path: str, **data: Any) -> Any:
        return self.client.post(path, data={"csrf": self.csrf, **data}, follow_redirects=False)

    def page(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        text: str = response.text
        return text

    def pagerduty(self, dedup_key: str = "disk-db-1", **payload: Any) -> None:
        body = {
            "routing_key": PD_KEY,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": "Disk almost full on db-1",
                "source": "db-1",
                "severity": "error",
                "component": "postgres",
                "group": "storage",
                "class": "disk",
                "custom_details": {"free": "3%"},
                **payload,
            },
            "links": [{"href": "https://runbooks.example/disk", "text": "Disk runbook"}],
            "images": [{"src": "https://graphs.example/disk.png", "alt": "Disk graph"}],
        }
        response = self.client.post("/v2/enqueue", json=body)
        assert response.status_code == 202, response.text

    def alertmanager(self, alertname: str = "HighLatency", status: str = "firing") -> None:
        body = {
            "version": "4",
            "status": status,
            "receiver": "tocsin",
            "groupKey": f'{{}}:{{alertname="{alertname}"}}',
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": alertname, "cluster": "eu-1", "severity": "error"},
                    "annotations": {"summary": f"{alertname} on eu-1"},
                    "startsAt": "2026-03-14T09:00:00Z",
                    "fingerprint": f"fp-{alertname}",
                }
            ],
        }
        response = self.client.post(f"/api/v1/ingest/{AM_KEY}", json=body)
        assert response.status_code == 202, response.text

    def group(self, group_id: int = 1) -> AlertGroupRow:
        with self.db.read() as session:
            row = session.get(AlertGroupRow, group_id)
            assert row is not None
            return row

    def history(self, group_id: int = 1) -> list[tuple[str, str]]:
        with self.db.read() as session:
            rows = alert_queries.group_history(session, group_id)
        return [(r.kind, r.actor) for r in reversed(rows) if r.alert_id is None]


@pytest.fixture
def web(
    core_config: Database, make_settings: Callable[..., Any], clock: FakeClock
) -> Iterator[Web]:
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    with core_config.write() as session:
        for user in ("alice", "bob", "carol"):
            access.set_password(session, user, PASSWORD)
        session.commit()
    app = create_app(make_settings(core_config.url), core_config, clock)
    with TestClient(app) as client:
        w = Web(client, core_config)
        w.login("bob")
        yield w


def test_pages_render_with_the_alert_and_its_payload(web: Web) -> None:
    web.pagerduty()
    listing = web.page("/alerts")
    assert "Disk almost full on db-1" in listing
    assert 'href="/alerts/1"' in listing
    assert "Firing" in listing
    assert "Database" in listing  # the service's name, not its id
    assert 'hx-trigger="every 2s"' in listing
    group = web.page("/alerts/1")
    for text in ("disk-db-1", "db-1", "postgres", "storage", "disk", "× 1", "Acknowledge"):
        assert text in group, text
    assert 'href="https://runbooks.example/disk"' in group
    assert 'href="https://graphs.example/disk.png"' in group
    # The integration key is a secret (whoever has it can raise alerts): named, never shown.
    assert PD_KEY not in group
    payload = re.search(r'href="(/alerts/payloads/\d+)"', group)
    assert payload
    raw = web.page(payload.group(1))
    assert "<pre" in raw
    assert "&#34;summary&#34;: &#34;Disk almost full on db-1&#34;" in raw
    assert PD_KEY not in raw
    for path in ("/silences", "/maintenance", "/heartbeats", "/changes", "/changes?service=api"):
        web.page(path)
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', group):
        assert web.client.get(asset).status_code == 200, asset
    assert web.client.get("/alerts/99").status_code == 404
    assert web.client.get("/alerts/nope").status_code == 404
    assert web.client.get("/alerts/payloads/99").status_code == 404
    assert web.client.get("/alerts/\u00b2").status_code == 404


def test_labels_filters_and_escaping(web: Web) -> None:
    web.alertmanager("HighLatency")
    web.pagerduty(summary="<script>alert(1)</script>")
    page = web.page("/alerts/1")
    for chip in ("alertname=HighLatency", "cluster=eu-1", "severity=error"):
        assert f'<span class="chip label">{chip}</span>' in page
    listing = web.page("/alerts")
    assert "<script>alert(1)" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    only_api = web.page("/alerts?service=api")
    assert "HighLatency on eu-1" in only_api
    assert "alert(1)" not in only_api
    assert "No alert groups match" in web.page("/alerts?status=resolved")
    assert "HighLatency on eu-1" in web.page("/alerts?status=open")
    assert web.client.get("/alerts?cursor=%%%").status_code == 422


def test_acknowledge_then_resolve(web: Web, clock: FakeClock) -> None:
    web.pagerduty()
    clock.advance(minutes=3)
    response = web.post("/alerts/1/acknowledge")
    assert response.status_code == 303
    assert response.headers["location"] == "/alerts/1"
    group = web.group()
    assert (group.status, group.acknowledged_by, group.acknowledged_at) == (
        "acknowledged",
        "bob",
        clock.now,
    )
    page = web.page("/alerts/1")
    assert "Acknowledge</button>" not in page
    assert "Resolve</button>" in page
    assert web.post("/alerts/1/resolve").status_code == 303
    assert (web.group().status, web.group().resolved_by) == ("resolved", "bob")
    assert web.history() == [("acknowledged", "bob"), ("resolved", "bob")]
    # A resolved group cannot be acknowledged: the page says why.
    refused = web.post("/alerts/1/acknowledge")
    assert refused.status_code == 409
    assert "cannot move from &#39;resolved&#39;" in refused.text


def test_silence_from_the_group_page_then_expire(web: Web, clock: FakeClock) -> None:
    web.alertmanager()
    assert web.post("/alerts/1/silence", duration="5y").status_code == 422
    response = web.post("/alerts/1/silence", duration="4h", comment="known, fixing")
    assert response.status_code == 303
    assert web.group().status == "suppressed"
    with web.db.read() as session:
        silence = session.query(SilenceRow).filter(SilenceRow.config_position.is_(None)).one()
    assert silence.matchers["alertname"] == "HighLatency"
    assert silence.ends_at == clock.now.replace(hour=clock.now.hour + 4)
    assert (silence.created_by, silence.comment) == ("bob", "known, fixing")
    listing = web.page("/silences")
    assert "alertname=HighLatency" in listing
    assert "known, fixing" in listing
    assert "from config" in listing  # the example's staging silence, without an Expire button
    assert listing.count(">Expire</button>") == 1
    assert web.post(f"/silences/{silence.id}/expire").status_code == 303
    with web.db.read() as session:
        assert session.get(SilenceRow, silence.id).ends_at == clock.now  # type: ignore[union-attr]
    assert "alertname=HighLatency" not in web.page("/silences")


def test_declare_from_the_group_goes_to_the_incident(web: Web) -> None:
    web.pagerduty()
    page = web.page("/alerts/1")
    assert "Declare incident" in page
    response = web.post("/alerts/1/declare", severity="P2", title="Database disk full")
    assert response.status_code == 303
    assert response.headers["location"] == "/incidents/1"
    assert web.group().incident_id == 1
    incident = web.page("/incidents/1")
    assert "Database disk full" in incident
    assert 'href="/incidents/1"' in web.page("/alerts")
    again = web.post("/alerts/1/declare", severity="P2")
    assert again.status_code == 422
    assert "already linked to incident 1" in again.text
    assert web.post("/alerts/1/declare", severity="P9").status_code == 422


def test_merge_into_an_open_incident(web: Web) -> None:
    declared = web.post("/incidents", title="Checkout is slow", severity="P1", services=["api"])
    assert declared.status_code == 303
    web.alertmanager()
    page = web.page("/alerts/1")
    assert '<option value="1"' in page
    assert "INC-1 · P1 · Checkout is slow" in page
    assert web.post("/alerts/1/merge", incident="").status_code == 422
    assert web.post("/alerts/1/merge", incident="42").status_code == 404
    assert web.post("/alerts/1/merge", incident="1").status_code == 303
    assert web.group().incident_id == 1
    assert web.history()[-1] == ("merged", "bob")
    with web.db.read() as session:
        kinds = [(e.kind, e.actor) for e in timeline.events(session, 1)]
    assert ("alert_group_linked", "bob") in kinds


def test_writes_without_the_csrf_token_are_refused(web: Web) -> None:
    web.pagerduty()
    for path in ("/alerts/1/acknowledge", "/alerts/1/resolve", "/silences", "/maintenance"):
        assert web.client.post(path, data={}).status_code == 403, path
        assert web.client.post(path, data={"csrf": "forged"}).status_code == 403, path
    assert web.group().status == "firing"
    # htmx sends the token as a header instead of a form field.
    sent = web.client.post(
        "/alerts/1/acknowledge", headers={"X-CSRF-Token": web.csrf}, follow_redirects=False
    )
    assert sent.status_code == 303


def test_viewer_sees_everything_but_no_buttons(web: Web) -> None:
    web.pagerduty()
    web.login("carol")
    page = web.page("/alerts/1")
    assert "Disk almost full on db-1" in page
    for control in ("Acknowledge</button>", "Resolve</button>", "Silence…", "Declare incident"):
        assert control not in page, control
    assert "Expire</button>" not in web.page("/silences")
    assert "New silence" not in web.page("/silences")
    assert "New maintenance window" not in web.page("/maintenance")
    for path, data in [
        ("/alerts/1/acknowledge", {}),
        ("/alerts/1/resolve", {}),
        ("/alerts/1/silence", {"duration": "1h"}),
        ("/alerts/1/declare", {"severity": "P1"}),
        ("/alerts/1/merge", {"incident": "1"}),
        ("/silences", {"matchers": "a=b", "duration": "1h"}),
        ("/silences/1/expire", {}),
        ("/maintenance", {"service": "api", "duration": "1h"}),
    ]:
        response = web.post(path, **data)
        assert response.status_code == 403, path
        assert "viewer" in response.text
    assert web.group().status == "firing"


def test_silence_form_reads_matcher_lines(web: Web) -> None:
    bad = web.post("/silences", matchers="alertname\ncluster=eu-1", duration="2h", comment="x")
    assert bad.status_code == 422
    assert "Line 1" in bad.text
    assert "cluster=eu-1" in bad.text  # the form comes back filled in
    assert web.post("/silences", matchers="a=b", duration="soon").status_code == 422
    assert web.post("/silences", matchers="a=~(", duration="1h").status_code == 422
    made = web.post(
        "/silences",
        matchers="alertname=DiskFull\n\ninstance=~db-.*\nenv!=prod",
        duration="90m",
        comment="disk swap",
    )
    assert made.status_code == 303
    with web.db.read() as session:
        row = session.query(SilenceRow).filter(SilenceRow.config_position.is_(None)).one()
    assert row.matchers == {
        "alertname": "DiskFull",
        "instance": {"regex": "db-.*"},
        "env": {"ne": "prod"},
    }
    listing = web.page("/silences")
    for line in ("alertname=DiskFull", "instance=~db-.*", "env!=prod"):
        assert line in listing


def test_maintenance_windows_create_and_end(web: Web, clock: FakeClock) -> None:
    assert web.post("/maintenance", service="", duration="1h").status_code == 422
    assert web.post("/maintenance", service="nope", duration="1h").status_code == 422
    assert web.post("/maintenance", service="api").status_code == 422
    both = web.post("/maintenance", service="api", duration="1h", end="2026-03-14T12:00")
    assert both.status_code == 422
    now = web.post("/maintenance", service="api", duration="2h", comment="db upgrade")
    assert now.status_code == 303
    later = web.post(
        "/maintenance", service="database", start="2026-03-15T01:00", end="2026-03-15T03:00"
    )
    assert later.status_code == 303
    page = web.page("/maintenance")
    assert "In progress" in page
    assert "Scheduled" in page
    assert "db upgrade" in page
    with web.db.read() as session:
        rows = session.query(MaintenanceWindowRow).order_by(MaintenanceWindowRow.id).all()
    assert rows[0].ends_at == clock.now.replace(hour=clock.now.hour + 2)
    assert (rows[1].starts_at.isoformat(), rows[1].ends_at.hour) == ("2026-03-15T01:00:00+00:00", 3)
    assert web.post(f"/maintenance/{rows[0].id}/end").status_code == 303
    assert web.post("/maintenance/99/end").status_code == 404
    assert "db upgrade" not in web.page("/maintenance")


def test_live_list_and_group_send_only_changes(web: Web) -> None:
    web.pagerduty()
    listing = web.page("/alerts")
    poll = re.search(r'hx-get="(/alerts/live\?[^"]+)"', listing)
    assert poll
    url = poll.group(1).replace("&amp;", "&")
    assert web.client.get(url).status_code == 204
    web.alertmanager()
    update = web.client.get(url)
    assert update.status_code == 200
    assert 'id="group-list" aria-live="polite" hx-swap-oob="true"' in update.text
    assert "HighLatency on eu-1" in update.text

    group = web.page("/alerts/1")
    poll = re.search(r'hx-get="(/alerts/1/live\?[^"]+)"', group)
    assert poll
    url = poll.group(1).replace("&amp;", "&")
    assert web.client.get(url).status_code == 204
    web.pagerduty()  # the same dedup key again: a re-fire
    update = web.client.get(url)
    assert update.status_code == 200
    assert 'id="group-summary" hx-swap-oob="true"' in update.text
    assert "× 2" in update.text
    assert "Refired" in update.text
    assert web.client.get("/alerts/99/live").status_code == 286


def test_heartbeats_and_change_events(web: Web, clock: FakeClock) -> None:
    page = web.page("/heartbeats")
    for text in ("Nightly backup", "Waiting", "Every 1d1h"):
        assert text in page
    assert web.client.post("/api/v1/heartbeats/nightly-backup-0001").status_code == 200
    page = web.page("/heartbeats")
    assert ">Ok<" in page
    clock.advance(hours=26)
    assert ">Overdue<" in web.page("/heartbeats")
    change = {
        "routing_key": PD_KEY,
        "payload": {"summary": "Deployed db config 42", "source": "deployer"},
        "links": [{"href": "https://ci.example/42", "text": "Build 42"}],
    }
    assert web.client.post("/v2/change/enqueue", json=change).status_code == 202
    changes = web.page("/changes")
    assert "Deployed db config 42" in changes
    assert 'href="https://ci.example/42"' in changes
    assert "Deployed db config 42" in web.page("/changes?service=database")
    assert "No change events for this service" in web.page("/changes?service=api")
