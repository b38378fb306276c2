"""The incident page's "Stakeholder update" panel: the cadence and audiences, the htmx preview
of every audience's copy, sending (it lands on the timeline), and refused input."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tocsin.api.app import create_app
from tocsin.services import access, communications, timeline
from tocsin.storage.db import Database

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
COMMUNICATION = """
audiences:
  - {id: stakeholders, type: email, to: [stakeholders@example.test]}
  - {id: status, type: statuspage}
communication:
  - {severities: [P0, P1], audiences: [stakeholders, status]}
"""


class Browser:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, who: str) -> None:
        page = self.client.get("/login")
        token = _CSRF.search(page.text)
        assert token
        self.client.post(
            "/login", data={"login": who, "password": PASSWORD, "csrf": token.group(1)}
        )
        found = _CSRF.search(self.client.get("/incidents").text)
        assert found
        self.csrf = found.group(1)

    def post(self, path: str, *, htmx: bool = False, **data: Any) -> Any:
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf} if htmx else {}
        form = data if htmx else {"csrf": self.csrf, **data}
        return self.client.post(path, data=form, headers=headers, follow_redirects=False)


@pytest.fixture
def db(core_config: Database) -> Database:
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    apply_yaml(core_config, COMMUNICATION)
    with core_config.write() as session:
        for user in ("alice", "carol"):
            access.set_password(session, user, PASSWORD)
        session.commit()
    return core_config


@pytest.fixture
def app(db: Database, make_settings: Callable[..., Any], clock: FakeClock) -> Any:
    return create_app(make_settings(db.url), db, clock)


@pytest.fixture
def alice(app: Any) -> Iterator[Browser]:
    with TestClient(app) as client:
        browser = Browser(client)
        browser.login("alice")
        yield browser


def declare(browser: Browser, severity: str = "P0") -> None:
    response = browser.post(
        "/incidents", title="Checkout fails", severity=severity, services=["api"]
    )
    assert response.status_code == 303


def test_the_panel_shows_cadence_audiences_and_the_form(alice: Browser) -> None:
    declare(alice)
    page = alice.client.get("/incidents/1").text
    assert 'id="stakeholder"' in page
    assert "Next update due" in page
    assert "(every 30 minutes)" in page
    assert "<strong>stakeholders</strong>" in page
    assert 'hx-post="/incidents/1/updates/preview"' in page
    assert '<option value="investigating">Investigating</option>' in page


def test_preview_shows_each_audience_copy(alice: Browser) -> None:
    declare(alice)
    response = alice.post(
        "/incidents/1/updates/preview", htmx=True, message="Rolled back <v2.3>", eta="20m",
        status="identified",
    )  # fmt: skip
    assert response.status_code == 200
    assert "Preview: update" in response.text
    assert "📊 INCIDENT UPDATE - P0: Checkout fails" in response.text
    assert "stakeholders@example.test" in response.text
    assert "Rolled back &lt;v2.3&gt;" in response.text  # escaped, never markup
    assert "Status: IDENTIFIED" in response.text
    empty = alice.post("/incidents/1/updates/preview", htmx=True, message="  ")
    assert empty.status_code == 200
    assert "The update is empty" in empty.text


def test_sending_lands_on_the_timeline(alice: Browser, db: Database) -> None:
    declare(alice)
    response = alice.post("/incidents/1/updates", message="Rolled back", status="identified")
    assert response.status_code == 303
    assert response.headers["location"] == "/incidents/1#stakeholder"
    with db.read() as session:
        kinds = [e.kind for e in timeline.events(session, 1)]
        (update,) = communications.list_updates(session, 1)
    assert kinds[-3:] == ["status_changed", "status_page_update", "stakeholder_update"]
    assert (update.created_by, update.source, update.messages) == ("alice", "web", 1)
    page = alice.client.get("/incidents/1").text
    assert "Rolled back" in page
    assert "update by Alice Example" in page


def test_refused_updates_explain_why(alice: Browser) -> None:
    declare(alice)
    empty = alice.post("/incidents/1/updates", message="")
    assert empty.status_code == 422
    assert "The update is empty" in empty.text
    bad = alice.post("/incidents/1/updates", message="x", status="closed")
    assert bad.status_code == 409
    assert "cannot move from" in bad.text


def test_viewers_see_the_panel_but_no_form(app: Any, alice: Browser) -> None:
    declare(alice)
    with TestClient(app) as client:
        carol = Browser(client)
        carol.login("carol")
        page = client.get("/incidents/1").text
        assert 'id="stakeholder"' in page
        assert 'id="update-form"' not in page
        assert carol.post("/incidents/1/updates", message="x").status_code == 403
