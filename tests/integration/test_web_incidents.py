"""Web UI incident work: every form lands in the database and on the timeline, as its user."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tocsin.api.app import create_app
from tocsin.core.actors import Actor, Scope
from tocsin.services import access, incidents, timeline
from tocsin.storage.db import Database
from tocsin.storage.tables import ChecklistItemRow, IncidentRow, TimelineEventRow

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
BOT = Actor(id="token:bot", scopes=frozenset(Scope), source="api")


class Web:
    """A signed-in browser stand-in: posts forms with the session's CSRF token."""

    def __init__(self, client: TestClient, db: Database) -> None:
        self.client = client
        self.db = db
        self.csrf = ""

    def login(self, who: str) -> None:
        page = self.client.get("/login")
        token = _CSRF.search(page.text)
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

    def events(self, incident_id: int = 1) -> list[TimelineEventRow]:
        with self.db.read() as session:
            return timeline.events(session, incident_id)

    def incident(self, incident_id: int = 1) -> IncidentRow:
        with self.db.read() as session:
            return incidents.get(session, incident_id)


@pytest.fixture
def web(core_config: Database, make_settings: Callable[..., Any], clock: Any) -> Iterator[Web]:
    with core_config.write() as session:
        access.set_password(session, "alice", PASSWORD)
        session.commit()
    app = create_app(make_settings(core_config.url), core_config, clock)
    with TestClient(app) as client:
        w = Web(client, core_config)
        w.login("alice")
        yield w


def declare(web: Web, **fields: Any) -> Any:
    values = {"title": "Checkout fails", "severity": "P1", "services": ["api"]}
    values.update(fields)
    return web.post("/incidents", **values)


def test_pages_render_with_security_headers_and_assets(web: Web) -> None:
    declare(web)
    for path in ("/incidents", "/incidents/new", "/incidents/1", "/incidents/INC-1"):
        page = web.client.get(path)
        assert page.status_code == 200, path
        assert "width=device-width" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
    page = web.client.get("/incidents/1").text
    assert 'hx-trigger="every 2s"' in page
    assert f'"X-CSRF-Token": "{web.csrf}"' in page
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        assert web.client.get(asset).status_code == 200, asset
    assert web.client.get("/incidents/99").status_code == 404
    assert web.client.get("/incidents/nope").status_code == 404
    # str.isdigit() accepts superscripts that int() rejects: this was a 500.
    assert web.client.get("/incidents/\u00b2").status_code == 404
    assert web.post("/incidents/1/checklist/\u00b2", done="1").status_code == 404


def test_declare_form_creates_the_incident_as_the_user(web: Web) -> None:
    response = declare(
        web, services=["api", "database"], description="EU only", customer_impact="No pay"
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/incidents/1"
    row = web.incident()
    assert (row.title, row.severity, row.created_by) == ("Checkout fails", "P1", "alice")
    assert (row.description, row.customer_impact) == ("EU only", "No pay")
    declared = web.events()[0]
    assert (declared.kind, declared.actor, declared.source) == ("declared", "alice", "web")
    assert declared.data["services"] == ["api", "database"]
    page = web.client.get("/incidents/1").text
    for text in ("INC-1", "incident-2026-03-14-001", "Checkout fails", "Triggered", "Acknowledge"):
        assert text in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "   "}, "Give the incident a title."),
        ({"severity": "P9"}, "Choose a severity from the list."),
        ({"services": ["nope"]}, "Unknown service: nope."),
        ({"title": "x" * 301}, "Keep the title under 300 characters."),
    ],
)
def test_bad_declare_form_comes_back_filled_in(
    web: Web, fields: dict[str, Any], message: str
) -> None:
    response = declare(web, description="keep me", **fields)
    assert response.status_code == 422
    assert message in response.text
    assert "keep me" in response.text
    with web.db.read() as session:
        assert session.query(IncidentRow).count() == 0


def test_writes_without_the_csrf_token_are_refused(web: Web) -> None:
    plain = {"title": "Forged", "severity": "P1"}
    assert web.client.post("/incidents", data=plain).status_code == 403
    assert web.client.post("/incidents", data={**plain, "csrf": "wrong"}).status_code == 403
    with web.db.read() as session:
        assert session.query(IncidentRow).count() == 0
    # htmx sends the token as a header instead of a form field.
    sent = web.client.post(
        "/incidents", data=plain, headers={"X-CSRF-Token": web.csrf}, follow_redirects=False
    )
    assert sent.status_code == 303


def test_acknowledge_status_and_resolve_walk_the_lifecycle(web: Web, clock: Any) -> None:
    declare(web)
    clock.advance(minutes=2)
    assert web.post("/incidents/1/acknowledge").status_code == 303
    assert web.incident().acknowledged_at == clock.now
    clock.advance(minutes=5)
    assert web.post("/incidents/1/status", status="monitoring").status_code == 303
    clock.advance(minutes=5)
    done = web.post("/incidents/1/resolve", resolution="Rolled back deploy 4411")
    assert done.status_code == 303
    row = web.incident()
    assert (row.status, row.resolution, row.resolved_at) == (
        "resolved",
        "Rolled back deploy 4411",
        clock.now,
    )
    changes = [
        (e.kind, e.actor, e.source) for e in web.events() if e.kind.startswith(("ack", "status"))
    ]
    assert changes == [
        ("acknowledged", "alice", "web"),
        ("status_changed", "alice", "web"),
        ("status_changed", "alice", "web"),
        ("status_changed", "alice", "web"),
    ]
    page = web.client.get("/incidents/1").text
    assert "Rolled back deploy 4411" in page
    assert ">Reopen<" in page
    assert ">Close<" in page
    assert "Acknowledge</button>" not in page


def test_illegal_transition_shows_the_reason(web: Web) -> None:
    declare(web)
    response = web.post("/incidents/1/status", status="closed")
    assert response.status_code == 409
    assert "cannot move from &#39;triggered&#39; to &#39;closed&#39;" in response.text
    assert web.post("/incidents/1/status", status="sideways").status_code == 422
    assert web.incident().status == "triggered"


def test_note_role_and_checklist_forms(web: Web) -> None:
    declare(web)
    assert web.post("/incidents/1/notes", text="  Rolled back.  ").status_code == 303
    assert web.post("/incidents/1/notes", text="   ").status_code == 422
    assert web.post("/incidents/1/roles", role="scribe", assignee="bob").status_code == 303
    assert web.post("/incidents/1/roles", role="commander", assignee="").status_code == 303
    assert web.post("/incidents/1/roles", role="janitor", assignee="bob").status_code == 422
    with web.db.read() as session:
        item = session.query(ChecklistItemRow).filter_by(incident_id=1).order_by("position").first()
        assert item is not None
    assert web.post(f"/incidents/1/checklist/{item.id}", done="1").status_code == 303
    assert web.post(f"/incidents/1/checklist/{item.id}", done="0").status_code == 303
    assert web.post("/incidents/1/checklist/99999", done="1").status_code == 404
    kinds = [(e.kind, e.text) for e in web.events() if e.actor == "alice" and e.kind != "declared"]
    assert kinds == [
        ("role_assigned", "alice is commander"),
        ("note", "Rolled back."),
        ("role_assigned", "bob is scribe"),
        ("role_unassigned", "commander role cleared (was alice)"),
        ("checklist_ticked", f"Done: {item.text}"),
        ("checklist_unticked", f"Not done: {item.text}"),
    ]


def test_pin_and_edit_keep_history_visible(web: Web) -> None:
    declare(web)
    web.post("/incidents/1/notes", text="Root cause: DNS")
    note = web.events()[-1]
    assert (
        web.post(f"/incidents/1/events/{note.id}/edit", text="Root cause: BGP").status_code == 303
    )
    assert web.post(f"/incidents/1/events/{note.id}/pin", pinned="1").status_code == 303
    page = web.client.get("/incidents/1").text
    assert "Root cause: BGP" in page
    assert "(edited)" in page
    assert "Root cause: DNS" in page
    assert "★ pinned" in page
    assert web.post(f"/incidents/1/events/{note.id}/pin", pinned="0").status_code == 303
    assert [e.kind for e in web.events()][-2:] == ["pinned", "unpinned"]
    declared = web.events()[0]
    assert web.post(f"/incidents/1/events/{declared.id}/edit", text="rewrite").status_code == 422


def test_user_text_is_escaped(web: Web) -> None:
    declare(web, title="<script>alert(1)</script>")
    web.post("/incidents/1/notes", text="<img src=x onerror=alert(2)>")
    page = web.client.get("/incidents/1").text
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page


def test_live_fragment_sends_only_what_changed(web: Web, clock: Any) -> None:
    declare(web)
    last = web.events()[-1].id
    version = web.incident().version
    quiet = web.client.get(f"/incidents/1/live?after={last}&version={version}")
    assert quiet.status_code == 204
    clock.advance(seconds=30)
    with web.db.write() as session:
        timeline.add_note(session, BOT, clock.now, 1, "Seen from elsewhere")
        session.commit()
    update = web.client.get(f"/incidents/1/live?after={last}&version={version}")
    assert update.status_code == 200
    assert 'hx-swap-oob="beforeend:#timeline-list"' in update.text
    assert "Seen from elsewhere" in update.text
    assert 'id="summary" hx-swap-oob="true"' in update.text
    newest = web.events()[-1].id
    assert f"after={newest}&amp;version={web.incident().version}" in update.text
    assert web.client.get("/incidents/99/live").status_code == 286


def test_pin_from_elsewhere_redraws_the_pinned_event(web: Web, clock: Any) -> None:
    declare(web)
    first = web.events()[0].id
    last = web.events()[-1].id
    with web.db.write() as session:
        timeline.set_pinned(session, BOT, clock.now, 1, first, True)
        session.commit()
    update = web.client.get(f"/incidents/1/live?after={last}&version={web.incident().version}")
    assert f'id="event-{first}" hx-swap-oob="true"' in update.text


def test_list_filters_and_pages(web: Web) -> None:
    for n in range(30):
        declare(web, title=f"Incident number {n}", severity="P2" if n % 2 else "P1", services=[])
    declare(web, title="Database is slow", severity="P3", services=["database"])
    web.post("/incidents/31/resolve", resolution="")
    first = web.client.get("/incidents")
    assert first.text.count('class="incident-row"') == 25
    older = re.search(r'href="(/incidents\?cursor=[^"]+)"', first.text)
    assert older
    second = web.client.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count('class="incident-row"') == 6
    assert "Older →" not in second.text
    resolved = web.client.get("/incidents?status=resolved").text
    assert resolved.count('class="incident-row"') == 1
    assert "Database is slow" in resolved
    assert web.client.get("/incidents?status=open").text.count('class="incident-row"') == 25
    assert web.client.get("/incidents?service=database").text.count('class="incident-row"') == 1
    assert (
        web.client.get("/incidents?severity=P1&q=number 2").text.count('class="incident-row"') == 6
    )
    assert "No incidents match" in web.client.get("/incidents?q=zzz").text
    broken = web.client.get("/incidents?cursor=%%%")
    assert broken.status_code == 422
    assert "invalid cursor" in broken.text
